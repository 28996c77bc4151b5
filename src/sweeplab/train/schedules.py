"""Learning-rate schedules as pure functions of the optimizer step.

``lr_at(step)`` gives the learning rate of optimizer step ``step`` (0-based, counted over the whole
run). Epoch-based schedules (step, multistep, exponential) are piecewise constant over an epoch;
cosine-with-warmup and one-cycle change every step. Because the schedule is a pure function, a
resumed run needs nothing but the step number to continue exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sweeplab.config import ScheduleConfig


@dataclass(frozen=True)
class Schedule:
    """A schedule bound to a base lr and the run's length."""

    cfg: ScheduleConfig
    base_lr: float
    steps_per_epoch: int
    epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def _interval_index(self, step: int) -> int:
        """Completed intervals (epochs or steps) before ``step``, the unit of step_size/milestones."""
        return step if self.cfg.interval == "step" else step // self.steps_per_epoch

    def lr_at(self, step: int) -> float:
        c, lr0 = self.cfg, self.base_lr
        if c.name == "constant":
            return lr0
        if c.name == "step":
            return lr0 * c.gamma ** (self._interval_index(step) // c.step_size)
        if c.name == "multistep":
            k = self._interval_index(step)
            return lr0 * c.gamma ** sum(k >= m for m in c.milestones)
        if c.name == "exponential":
            return lr0 * c.gamma ** self._interval_index(step)
        if c.name == "cosine":
            warm = round(c.warmup_epochs * self.steps_per_epoch)
            if step < warm:
                return lr0 * (step + 1) / warm
            span = max(1, self.total_steps - warm)
            t = min(1.0, (step - warm) / span)
            return c.min_lr + (lr0 - c.min_lr) * 0.5 * (1 + math.cos(math.pi * t))
        if c.name == "onecycle":
            return self._onecycle(step)
        raise AssertionError(f"unhandled schedule {c.name}")

    def _onecycle(self, step: int) -> float:
        """torch.optim.lr_scheduler.OneCycleLR's cosine two-phase policy (div 25, final div 1e4)."""
        c = self.cfg
        peak = c.max_lr or self.base_lr
        start, end = peak / 25.0, peak / 25.0 / 1e4
        last = max(1, self.total_steps - 1)
        up = float(c.pct_start * self.total_steps) - 1
        if step <= up:
            t = step / up if up > 0 else 1.0
            return end_cos(start, peak, t)
        t = (step - up) / max(1e-12, last - up)
        return end_cos(peak, end, min(1.0, t))


def end_cos(a: float, b: float, t: float) -> float:
    """Cosine interpolation from ``a`` (t=0) to ``b`` (t=1)."""
    return b + (a - b) / 2.0 * (math.cos(math.pi * t) + 1)


def build_schedule(cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int, epochs: int) -> Schedule:
    return Schedule(cfg, base_lr, max(1, steps_per_epoch), epochs)
