"""Curves against the global step, for studies whose runs evaluate every N steps
(``eval_every_steps``): one figure per evaluated split, accuracy and loss side by side, every
setting's mean over seeds with its 95% band, placed with the epoch curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

from .canvas import RC, Figure, Style, figure
from .canvas import new as _new
from .figures import _scale
from .stats import mean_curve
from .tables import ArmSetting, RunData

_SPLITS = {"test": "Test", "val": "Validation"}


def _draw(ax: Any, runs: Sequence[RunData], metric: str, style: Style, label: str, scale: float) -> list[float]:
    """Mean over runs per step, with a 95% band where two or more runs have the step."""
    mc = mean_curve([r.step_curve(metric) for r in runs])
    if not mc:
        return []
    xs = [step for step, _ in mc]
    ys = [m.mean * scale for _, m in mc]
    ax.plot(xs, ys, color=style.colour, linestyle=style.line, linewidth=1.6, label=label,
            marker="o" if len(xs) == 1 else None, markersize=4)
    if any(m.n >= 2 for _, m in mc):
        lo = [(m.ci_low if m.ci_low is not None else m.mean) * scale for _, m in mc]
        hi = [(m.ci_high if m.ci_high is not None else m.mean) * scale for _, m in mc]
        if scale == 100.0:  # a mean accuracy lies in [0, 100]%
            lo, hi = [max(v, 0.0) for v in lo], [min(v, 100.0) for v in hi]
        ax.fill_between(xs, lo, hi, color=style.colour, alpha=0.15, linewidth=0)
    return ys


def _every(runs: Sequence[RunData]) -> str:
    values = sorted({r.config.get("eval_every_steps") for r in runs} - {None})
    return " or ".join(str(v) for v in values) or "N"


def step_curve_figure(settings: Sequence[ArmSetting], split: str, palette: dict[str, Style]) -> Figure | None:
    """``split``'s (test or val) accuracy and loss against the global step, for every setting
    whose runs have step rows; None when none has them for this split."""
    acc, loss = f"{split}_acc", f"{split}_loss"
    runs_by = [(s, [r for r in s.trained_runs if r.step_curve(acc)]) for s in sorted(settings, key=lambda s: s.position)]
    drawn = [r for _, runs in runs_by for r in runs]
    if not drawn:
        return None
    name = _SPLITS.get(split, split)
    with matplotlib.rc_context(RC):
        fig = _new(10.0, 3.8)
        ax_acc, ax_loss = fig.subplots(1, 2)
        losses: list[float] = []
        for s, runs in runs_by:
            if runs:
                _draw(ax_acc, runs, acc, palette[s.label], s.label, 100.0)
                losses += _draw(ax_loss, runs, loss, palette[s.label], s.label, 1.0)
        log, why = _scale(loss, losses, False)
        if log:
            ax_loss.set_yscale("log")
        ax_acc.set_ylabel(f"{name.lower()} accuracy (%)")
        ax_loss.set_ylabel(f"{name.lower()} loss")
        ax_loss.set_title(f"{name} loss" + (f" ({why})" if why else ""))
        ax_acc.set_title(f"{name} accuracy")
        for ax in (ax_acc, ax_loss):
            ax.set_xlabel("step (optimizer steps since the run's start)")
        ax_loss.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    every = _every(drawn)
    title = f"{name} accuracy and loss every {every} steps"
    caption = (f"Evaluated every {every} optimizer steps (eval_every_steps), counted over the whole run; "
               "mean over seeds per step, the shaded band the 95% confidence interval of the mean. "
               "Settings with different batch sizes take different numbers of steps per epoch.")
    if why:
        caption += f" The loss axis is on a {why}."
    return figure(f"steps_{split}", title, caption, fig, "curves")
