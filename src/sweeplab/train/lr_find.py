"""The LR range test: train a fresh copy of a run's model for a few hundred steps while the
learning rate grows exponentially, and suggest a learning rate from the loss curve.

It follows the fastai / PyTorch Lightning conventions (Leslie Smith's range test as
``learn.lr_find()`` and ``Tuner.lr_find`` run it):

- the lr of step ``i`` of ``n`` is ``start * (end / start) ** (i / (n - 1))`` (1e-7 to 10 over
  100 steps by default), set on every parameter group before the step;
- the training loss is smoothed with an exponential moving average (beta 0.98), debiased as in
  Adam (divided by ``1 - beta ** (i + 1)``), so the first steps are not pulled towards zero;
- the test stops as soon as the smoothed loss exceeds 4x its minimum so far, or a loss is not
  finite: past that point the curve only shows divergence;
- suggestions (:data:`METHODS`) read the smoothed curve without its first tenth (of the planned
  steps) and its last five points, as fastai does: ``valley`` (fastai's default), ``steepest``
  (most negative slope against log lr) and ``minimum`` (the lr of the lowest loss, divided by 10).

Nothing of the test outlives it: the model, optimizer and loader come from :func:`build` for the
test alone and are thrown away; the run's own training builds its own from its seed, so a test
before a run (in the same process or not) leaves the run's results exactly as they were.
Two tests with the same config, seed and settings give the same curve to the last digit on the
CPU: everything random is seeded by the run's seed (fastai#3295 is the complaint it answers).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweeplab.config import RunConfig
from sweeplab.data import Dataset
from sweeplab.errors import ConfigError
from sweeplab.resolve import identity

from .epoch import _autocast
from .setup import Setup, build, seed_everything

#: Suggestion methods: valley is fastai's default.
METHODS = ("valley", "steepest", "minimum")
MIN_STEPS = 10
MAX_STEPS = 100_000


@dataclass(frozen=True)
class LrFindSettings:
    """How the learning rate is swept and what is suggested."""

    start: float = 1e-7
    end: float = 10.0
    steps: int = 100
    method: str = "valley"
    beta: float = 0.98
    """Smoothing of the loss (exponential moving average, debiased)."""
    stop_factor: float = 4.0
    """Stop once the smoothed loss exceeds this multiple of its minimum."""

    def check(self) -> None:
        """One-line ``ConfigError`` naming the setting, its value and what is allowed."""
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ConfigError(f"must be a positive finite learning rate (got {value!r})", path=name)
        if self.start >= self.end:
            raise ConfigError(f"must be below the end learning rate ({self.end:g}): the sweep grows from start "
                              f"to end (got {self.start:g})", path="start")
        if not math.isfinite(self.end / self.start):  # the lrs between would overflow to inf
            raise ConfigError(f"the range {self.start:g} to {self.end:g} spans more than a float can hold; "
                              "give a start and an end within 1e300 of each other", path="start")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not MIN_STEPS <= self.steps <= MAX_STEPS:
            raise ConfigError(f"must be an integer from {MIN_STEPS} to {MAX_STEPS} (got {self.steps!r})",
                              path="steps")
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r} (allowed: {', '.join(METHODS)})", path="method")

    def lr_at(self, step: int) -> float:
        return self.start * (self.end / self.start) ** (step / (self.steps - 1))

    def sweep(self) -> dict[str, Any]:
        """What determines the curve (the method only reads it)."""
        return {"start": self.start, "end": self.end, "steps": self.steps, "beta": self.beta,
                "stop_factor": self.stop_factor}


@dataclass
class LrFindResult:
    """An LR range test: the curve, the suggested lr and how it was chosen."""

    lrs: list[float]
    losses: list[float]
    """The training loss of each step (the step past 4x included; a non-finite one is not kept)."""
    smoothed: list[float]
    suggestion: float | None
    """The suggested learning rate; None when the curve has too few points (see ``detail``)."""
    method: str
    index: int | None
    """The step the suggestion was read at (for ``minimum``, the lowest loss; the lr is a tenth)."""
    detail: str
    """How the test ended: all steps run, or where and why it stopped."""
    seed: int
    settings: LrFindSettings
    key: str = ""
    study: str | None = None
    arm: str | None = None
    files: dict[str, Path] = field(default_factory=dict)
    """The plots written (``png``, ``svg``)."""

    def curve(self) -> dict[str, Any]:
        """The curve as stored (``lr_finds.curve_json``)."""
        return {"lrs": self.lrs, "losses": self.losses, "smoothed": self.smoothed, "index": self.index,
                "detail": self.detail, "settings": self.settings.sweep()}


def lr_find_key(cfg: RunConfig, settings: LrFindSettings, study: str | None = None, arm: str | None = None) -> str:
    """The test's identity: the run's (config without threads, seed included), the sweep's settings
    and the study and arm it was made for."""
    blob = json.dumps({"run": identity(cfg), "sweep": settings.sweep(), "study": study, "arm": arm},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def range_test(cfg: RunConfig, settings: LrFindSettings = LrFindSettings(), *,
               data_dir: str | Path | None = None, dataset: Dataset | None = None) -> LrFindResult:
    """Run the range test on a fresh model of ``cfg`` (seeded by ``cfg.seed``) and suggest an lr."""
    settings.check()
    setup = build(cfg, data_dir, dataset)
    if not hasattr(setup.optimizer, "param_groups"):
        raise ConfigError(f"model {cfg.model.name!r} brings an optimizer without param_groups: "
                          "its learning rate cannot be swept", path="model.name")
    seed_everything(cfg.seed)  # build's model creation drew from the generators: start the steps from the seed
    before = torch.backends.mkldnn.enabled
    if setup.native_conv:  # the kernels the run's own epochs train with (see train_epoch)
        torch.backends.mkldnn.enabled = False
    try:
        lrs, losses, smoothed, detail = _sweep(setup, settings)
    finally:
        torch.backends.mkldnn.enabled = before
    index, suggestion = suggest(lrs, smoothed, settings.method, settings.steps)
    if suggestion is None:
        detail += ("; the loss never fell below its first value: the range starts too high, lower the start"
                   if len(smoothed) >= 2 and min(smoothed) >= smoothed[0] else
                   "; too few finite points to suggest a learning rate")
    return LrFindResult(lrs=lrs, losses=losses, smoothed=smoothed, suggestion=suggestion, method=settings.method,
                        index=index, detail=detail, seed=cfg.seed, settings=settings)


def _batches(setup: Setup) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The run's training batches, epoch after epoch, for as many steps as the test takes."""
    epoch = 1
    while True:
        setup.train_loader.set_epoch(epoch)
        yield from setup.train_loader
        epoch += 1


def _sweep(setup: Setup, s: LrFindSettings) -> tuple[list[float], list[float], list[float], str]:
    model, opt = setup.model, setup.optimizer
    model.train()
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    for i, (xb, yb) in zip(range(s.steps), _batches(setup)):
        lr = s.lr_at(i)
        for group in opt.param_groups:
            group["lr"] = lr
        value = _step(setup, xb, yb)
        if not math.isfinite(value):
            return lrs, losses, smoothed, f"stopped at step {i + 1} of {s.steps} (lr {lr:.3g}): non-finite loss"
        avg = s.beta * avg + (1 - s.beta) * value
        smooth = avg / (1 - s.beta ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(smooth)
        best = min(best, smooth)
        if i > 0 and smooth > s.stop_factor * best:
            return lrs, losses, smoothed, (f"stopped at step {i + 1} of {s.steps} (lr {lr:.3g}): smoothed loss "
                                           f"{smooth:.4g} > {s.stop_factor:g}x its minimum {best:.4g}")
    return lrs, losses, smoothed, f"ran all {s.steps} steps (lr {s.start:g} to {s.end:g})"


def _step(setup: Setup, xb: torch.Tensor, yb: torch.Tensor) -> float:
    """One optimizer step, as a training epoch takes it; the step's loss."""
    with _autocast(setup):
        loss = setup.loss_fn(setup.model(xb), yb)
    setup.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if setup.cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(setup.model.parameters(), setup.cfg.grad_clip)
    setup.optimizer.step()
    return float(loss.item())


def suggest(lrs: list[float], smoothed: list[float], method: str, planned_steps: int) -> tuple[int | None, float | None]:
    """``(index, lr)`` suggested by ``method`` from the smoothed curve, or ``(None, None)``.

    The first tenth of the planned steps (the loss barely moves there) and the last five points
    (where it turns up) are left out, as fastai does, when enough points remain.
    """
    n = len(smoothed)
    lo, hi = planned_steps // 10, n - 5
    if hi - lo < 5:
        lo, hi = 0, n
    if hi - lo < 2 or min(smoothed) >= smoothed[0]:  # too short, or the loss never fell: nothing to read
        return None, None
    x = np.log(np.asarray(lrs[lo:hi], dtype=np.float64))
    y = np.asarray(smoothed[lo:hi], dtype=np.float64)
    if method == "valley":
        i = valley_index(y)
    elif method == "steepest":
        i = int(np.argmin(np.gradient(y, x)))
    elif method == "minimum":
        i = int(np.argmin(y))
        return lo + i, lrs[lo + i] / 10
    else:
        raise ConfigError(f"unknown method {method!r} (allowed: {', '.join(METHODS)})", path="method")
    return lo + i, lrs[lo + i]


def valley_index(y: np.ndarray) -> int:
    """fastai's ``valley``: the longest valley is the longest decreasing run of losses (a
    subsequence, so the noise of single steps does not break it); the point picked lies in it,
    a third plus a sixth of its length past its start (a little before the middle), where the
    loss still falls fast and is far from where it turns up."""
    n = len(y)
    length = np.ones(n, dtype=np.int64)  # length of the longest decreasing subsequence ending at i
    for i in range(1, n):
        above = y[:i] > y[i]
        if above.any():
            length[i] = length[:i][above].max() + 1
    end = int(np.argmax(length))  # the first point where the longest one ends
    start = max(0, end - int(length[end]))
    span = (end - start) / 3
    return start + int(span) + int(span / 2)

