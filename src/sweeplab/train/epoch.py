"""One epoch: a pass over the training set (a non-finite loss is ``Diverged``), evaluation on
the validation and test sets, and the epoch's row as the store keeps it."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from sweeplab.config.schema import MAX_STEP_EVALS
from sweeplab.data import DeviceLoader
from sweeplab.errors import ConfigError

from .device import peak_memory_mb

from .setup import Setup

Progress = Callable[[str, dict[str, Any]], None]
"""``progress(event, info)``: events ``start``, ``batch`` (step, steps), ``epoch`` (the row), ``end``."""


class Diverged(Exception):
    """The training loss became non-finite."""

    def __init__(self, epoch: int, step: int, value: float):
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(f"non-finite training loss ({value}) at epoch {epoch}, step {step}")




def _autocast(setup: Setup):
    if setup.cfg.precision == "bf16" and setup.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(setup.device.type, enabled=False)


def train_epoch(setup: Setup, epoch: int, progress: Progress | None = None,
                evals: "StepEvals | None" = None) -> dict[str, float]:
    """One pass over the training set; returns train loss/accuracy and the lr used.

    Loss and accuracy are means over the samples this epoch trained on. On the CPU every step's
    loss is checked (a float read costs nothing there); on an accelerator only every 25 steps and
    at the end, to avoid a device sync per step. ``evals`` (``eval_every_steps``) evaluates every
    N global steps and keeps this epoch's rows (see :class:`StepEvals`).
    """
    if evals is not None:
        evals.begin(epoch)
    if not setup.native_conv:
        return _train_epoch(setup, epoch, progress, evals)
    # A process-wide switch: set for this epoch only, so evaluation (large batches) keeps oneDNN.
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        return _train_epoch(setup, epoch, progress, evals)
    finally:
        torch.backends.mkldnn.enabled = before


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _train_epoch(setup: Setup, epoch: int, progress: Progress | None, evals: "StepEvals | None") -> dict[str, float]:
    model, opt, loader, sched = setup.model, setup.optimizer, setup.train_loader, setup.schedule
    model.train()
    loader.set_epoch(epoch)
    steps = len(loader)
    step0 = (epoch - 1) * steps
    on_cpu = setup.device.type == "cpu"
    clip = setup.cfg.grad_clip
    loss_sum = torch.zeros((), dtype=torch.float64, device=setup.device)
    correct = torch.zeros((), dtype=torch.int64, device=setup.device)
    seen = 0
    lr_sum = 0.0
    current_lr = None
    lr_first = sched.lr_at(step0)
    report_every = max(1, steps // 50)
    for i, (xb, yb) in enumerate(loader):
        lr = sched.lr_at(step0 + i)
        if lr != current_lr:  # setting the lr only on change keeps small-batch steps cheap
            _set_lr(opt, lr)
            current_lr = lr
        lr_sum += lr
        with _autocast(setup):  # batches come in the model's memory format (channels_last or not)
            logits = model(xb)
            loss = setup.loss_fn(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        n = yb.shape[0]
        seen += n
        if on_cpu:
            value = loss.item()
            if not math.isfinite(value):
                raise Diverged(epoch, i + 1, value)
            contribution: Any = value * n
            loss_sum += contribution
        else:
            contribution = loss.detach().double() * n
            loss_sum += contribution
            if (i + 1) % 25 == 0 and not torch.isfinite(loss_sum).item():
                raise Diverged(epoch, i + 1, float(loss.item()))
        correct += (logits.detach().argmax(1) == yb).sum()
        if evals is not None:
            evals.after_step(step0 + i + 1, contribution, n, lr)
        if progress is not None and ((i + 1) % report_every == 0 or i + 1 == steps):
            progress("batch", {"epoch": epoch, "step": i + 1, "steps": steps})
    total = loss_sum.item()
    if not math.isfinite(total):
        raise Diverged(epoch, steps, total)
    return {
        "train_loss": total / seen,
        "train_acc": correct.item() / seen,
        "lr": lr_first,
        "lr_mean": lr_sum / max(1, steps),
        "train_samples": seen,
    }


def check_step_evals(every: int, epochs: int, steps_per_epoch: int) -> None:
    """Refuse a run that would evaluate more than ``MAX_STEP_EVALS`` times (its data's size
    is known only now, so this is the earliest point)."""
    evals = epochs * max(1, steps_per_epoch) // every
    if evals > MAX_STEP_EVALS:
        raise ConfigError(
            f"{every:,} gives {evals:,} evaluations ({epochs:,} epochs of {steps_per_epoch:,} steps); "
            f"the limit is {MAX_STEP_EVALS:,} per run: raise eval_every_steps",
            path="eval_every_steps")


class StepEvals:
    """Evaluation every ``every`` global optimizer steps (run option ``eval_every_steps``).

    Steps are counted over the whole run from 1 (epoch e's follow epoch e-1's), so steps N, 2N,
    ... are evaluated wherever the epoch boundaries fall. Each evaluation adds a row to ``rows``
    (step, epoch, the mean training loss over the steps since the previous evaluation, val/test
    loss and accuracy, the step's lr); the loop commits an epoch's rows with the epoch and its
    checkpoint, which carries the loss window (:meth:`window`) on to the next epoch. A resumed
    run redoes an unfinished epoch, and its evaluations, from that checkpoint. Evaluation draws
    no random numbers (the eval loaders do not shuffle, dropout is off in eval mode) and leaves
    BatchNorm statistics alone, so the training, and the epoch rows, are a run's without it.
    """

    def __init__(self, setup: Setup, every: int):
        self.setup, self.every = setup, every
        self.epoch = 0
        self.rows: list[dict[str, Any]] = []
        # Evaluate with the kernels the epoch-end evaluation uses (train_epoch may switch oneDNN off).
        self.mkldnn = torch.backends.mkldnn.enabled
        self.loss_sum: Any = 0.0  # float on the CPU, a device tensor elsewhere (no sync per step)
        self.n = 0

    def begin(self, epoch: int) -> None:
        """Start collecting ``epoch``'s rows (the loss window goes on from the previous epoch)."""
        self.epoch, self.rows = epoch, []

    def window(self) -> tuple[float, int]:
        """(loss sum, samples) since the last evaluation: checkpointed so a resume continues it."""
        return float(self.loss_sum), self.n

    def restore(self, window: tuple[float, int] | None) -> None:
        self.loss_sum, self.n = (0.0, 0) if window is None else (float(window[0]), int(window[1]))

    def after_step(self, step: int, loss_contribution: Any, n: int, lr: float) -> None:
        """Account for global step ``step`` (its loss times its batch size), evaluating on its multiples."""
        self.loss_sum = self.loss_sum + loss_contribution
        self.n += n
        if step % self.every:
            return
        row: dict[str, Any] = {"step": step, "epoch": self.epoch, "lr": lr,
                               "train_loss": float(self.loss_sum) / max(1, self.n)}
        during = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = self.mkldnn
        try:
            for split, loader in self.setup.eval_loaders.items():
                ev = evaluate(self.setup, loader)
                row[f"{split}_loss"], row[f"{split}_acc"] = ev["loss"], ev["acc"]
        finally:
            torch.backends.mkldnn.enabled = during
            self.setup.model.train()
        self.rows.append(row)
        self.loss_sum, self.n = 0.0, 0


@torch.no_grad()
def evaluate(setup: Setup, loader: DeviceLoader) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion matrix in eval mode, no gradients."""
    model = setup.model
    model.eval()
    k = setup.dataset.num_classes
    confusion = torch.zeros(k * k, dtype=torch.int64, device=setup.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=setup.device)
    n = 0
    loader.set_epoch(0)
    for xb, yb in loader:
        with _autocast(setup):
            logits = model(xb)
            loss = setup.loss_fn(logits.float(), yb)
        loss_sum += loss.double() * yb.shape[0]
        n += yb.shape[0]
        confusion += torch.bincount(yb * k + logits.argmax(1), minlength=k * k)
    cm = confusion.view(k, k).cpu()
    per_class_total = cm.sum(1).clamp(min=1)
    return {
        "loss": loss_sum.item() / max(1, n),
        "acc": cm.diag().sum().item() / max(1, n),
        "per_class_acc": (cm.diag() / per_class_total).tolist(),
        "confusion": cm.tolist(),
    }


def epoch_row(setup: Setup, epoch: int, train: dict[str, float], train_time: float) -> dict[str, Any]:
    """Evaluate and assemble the epoch's metrics, as stored (``epoch_time_s`` is added by the caller)."""
    row: dict[str, Any] = {
        "train_loss": train["train_loss"],
        "train_acc": train["train_acc"],
        "lr": train["lr"],
        "lr_mean": train["lr_mean"],
    }
    for split, loader in setup.eval_loaders.items():
        ev = evaluate(setup, loader)
        row[f"{split}_loss"], row[f"{split}_acc"] = ev["loss"], ev["acc"]
        if split == "test":
            row["test_per_class_acc"] = ev["per_class_acc"]
            if setup.dataset.num_classes <= 20 or epoch == setup.cfg.epochs:
                row["test_confusion"] = ev["confusion"]
    row["train_images_per_s"] = train["train_samples"] / max(train_time, 1e-9)
    row["peak_mem_mb"] = peak_memory_mb(setup.device)
    return row


