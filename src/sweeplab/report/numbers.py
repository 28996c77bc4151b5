"""Numbers as the report and the CLI write them, in one place: accuracies as percent, differences
in points, p-values, counts, durations, times and config values."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from sweeplab.vocabulary import RUN_STATUSES


def fmt(value: Any, pattern: str, nonfinite: str | None = None) -> str:
    """``pattern.format(value)``; ``-`` for a missing value. A non-finite float shows as itself
    (``nan``: a diverged loss is worth seeing), or as ``nonfinite`` when given."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value) if nonfinite is None else nonfinite
    return pattern.format(value)




def compact(x: float | None) -> str:
    """``1234567 -> '1.23M'``: for parameter and FLOP counts."""
    if x is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.0f}"


def acc_pm(s: Any) -> str:
    """Mean ± std in percent, ``'96.94 ± 0.35'``."""
    if s.mean is None:
        return "-"
    return f"{100 * s.mean:.2f}" + (f" ± {100 * s.std:.2f}" if s.std is not None else "")


def acc_ci(s: Any) -> str:
    """The 95% CI in percent, cut to the possible range [0, 100] (a t-interval over a few widely
    spread seeds can pass it) as in the sweep figures; the statistics themselves are not cut."""
    if s.ci_low is None or s.ci_high is None:
        return "-"
    return f"[{100 * max(s.ci_low, 0.0):.2f}, {100 * min(s.ci_high, 1.0):.2f}]"


def outcome_text(counts: dict[str, int]) -> str:
    order = [s for s in RUN_STATUSES if s not in ("pending", "running")] + ["running", "pending"]
    return ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k)) or "-"


def when(ts: str | None) -> str:
    if not ts:
        return "-"
    try:
        return datetime.fromisoformat(ts).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return ts


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def value_text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, default=str)
    return str(v)


def pct(x: float | None, digits: int = 1) -> str:
    """An accuracy fraction as percent: ``0.9712 -> '97.1%'``."""
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def points(x: float | None) -> str:
    """An accuracy difference in percentage points, signed: ``-0.031 -> '-3.1 points'``."""
    if x is None:
        return "-"
    digits = 2 if abs(x) < 0.01 else 1
    return f"{100 * x:+.{digits}f} points"


def pval(p: float | None) -> str:
    if p is None:
        return "-"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.01 else f"p={p:.2f}"
