"""Early stopping as a pure function of the run's stored epoch rows, so a resumed run continues
the patience count exactly where a killed one left it (nothing is kept outside the store)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sweeplab.vocabulary import lower_is_better


def stop_after(values: Sequence[float | None], metric: str, patience: int, min_delta: float) -> int | None:
    """The best epoch (1-based) when the last ``patience`` epochs of ``values`` (the metric per
    epoch) brought no improvement beyond ``min_delta``; None while the run should go on.

    A missing or non-finite value counts as no improvement.
    """
    lower = lower_is_better(metric)
    best: float | None = None
    best_epoch = wait = 0
    for epoch, value in enumerate(values, 1):
        usable = value is not None and math.isfinite(value)
        better = usable and (best is None or (value < best - min_delta if lower else value > best + min_delta))
        if better:
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
    return best_epoch if best_epoch and wait >= patience else None
