"""The statistics a report states: summaries over seeds, Welch's t-test, chance level, curve facts.

Pure functions of plain numbers, no store and no plotting, so tests can check each one against
scipy on the same numbers. What cannot be computed is ``None`` (rendered as "-" or as a sentence
saying why), never a number that looks meaningful: the standard deviation of one value, the
confidence interval of one seed or a t-test between single runs do not exist.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _sps

#: Significance level of every test in a report.
ALPHA = 0.05
#: Confidence level of every interval in a report.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and a Student-t confidence interval of values over seeds."""

    values: tuple[float, ...] = field(default=())
    n: int = 0
    mean: float | None = None
    std: float | None = None
    """Sample standard deviation (ddof=1); None for n < 2."""
    ci_low: float | None = None
    ci_high: float | None = None
    """95% interval of the mean, mean +- t(0.975, n-1) * std / sqrt(n); None for n < 2."""

    @property
    def half_width(self) -> float | None:
        return None if self.ci_high is None or self.mean is None else self.ci_high - self.mean


def t_critical(n: int) -> float:
    """Student t quantile of the ``CONFIDENCE`` interval of a mean of ``n >= 2`` values: the
    interval is mean +- t_critical(n) * std / sqrt(n) (the dashboard draws its bands with it)."""
    return float(_sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def summarize(values: Sequence[float | None]) -> Summary:
    """Summary of the finite values among ``values`` (None and NaN are left out)."""
    xs = tuple(float(v) for v in values if v is not None and math.isfinite(v))
    n = len(xs)
    if n == 0:
        return Summary()
    mean = float(np.mean(xs))
    if n == 1:
        return Summary(xs, 1, mean)
    std = float(np.std(xs, ddof=1))
    half = t_critical(n) * std / math.sqrt(n)
    return Summary(xs, n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Comparison:
    """``a`` minus ``b`` with Welch's unequal-variance t-test; ``p`` None when no test is possible."""

    diff: float | None
    p: float | None = None
    t: float | None = None
    df: float | None = None
    note: str | None = None
    """Why there is no p-value ("n=1, no test", "no spread, no test"), or None."""

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA


def welch(a: Summary, b: Summary) -> Comparison:
    """Welch's t-test of ``a`` against ``b`` (scipy's ``ttest_ind(equal_var=False)``)."""
    if a.n == 0 or b.n == 0:
        return Comparison(None, note="no finished runs, no test")
    diff = a.mean - b.mean  # type: ignore[operator]
    if a.n < 2 or b.n < 2:
        return Comparison(diff, note="n=1, no test")
    if a.std == 0 and b.std == 0:
        # Every seed gave the same number on both sides: scipy returns nan; a t-test says nothing.
        return Comparison(diff, note="no spread over seeds, no test")
    with warnings.catch_warnings():
        # Near-identical values on one side make scipy warn about precision; the p-value stands.
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _sps.ttest_ind(a.values, b.values, equal_var=False)
    df = getattr(res, "df", None)
    return Comparison(diff, float(res.pvalue), float(res.statistic), None if df is None else float(df))


def mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, Summary]]:
    """Per-epoch summaries over several runs' ``(epoch, value)`` curves.

    Each epoch is summarised over the runs that have it, so a diverged run (which stops early)
    leaves the mean from that epoch on, and ``Summary.n`` says how many runs each point holds.
    """
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, value in curve:
            if value is not None and math.isfinite(value):
                by_epoch.setdefault(int(epoch), []).append(float(value))
    return [(e, summarize(vs)) for e, vs in sorted(by_epoch.items())]


def epochs_to_fraction(curve: Sequence[tuple[int, float]], fraction: float = 0.95) -> int | None:
    """First epoch at which ``curve`` reaches ``fraction`` of its own maximum (None if empty)."""
    points = [(e, v) for e, v in curve if v is not None and math.isfinite(v)]
    if not points:
        return None
    best = max(v for _, v in points)
    return next(e for e, v in points if v >= fraction * best)


@dataclass(frozen=True)
class ChanceTest:
    """Is an accuracy distinguishable from guessing? One-sided exact binomial test."""

    chance: float
    """Accuracy of always answering the most common test class (1/k for a balanced test set)."""
    n_test: int | None
    threshold: float
    """Lowest accuracy that is significantly above ``chance`` at ``ALPHA`` with ``n_test`` examples."""
    at_chance: bool
    p: float | None


#: Margin over chance used only when the number of test examples is unknown (no confusion matrix).
CHANCE_MARGIN = 0.02


def chance_test(acc: float, class_counts: Sequence[int] | None, num_classes: int) -> ChanceTest:
    """Whether ``acc`` is at chance level.

    With the test set's class counts (the confusion matrix's row sums), chance is the share of the
    most common class and the run is at chance when a one-sided binomial test cannot tell its
    number of correct answers from that share at ``ALPHA``. Without them, chance is 1/k and the
    run is at chance when ``acc <= 1/k + CHANCE_MARGIN``.
    """
    if class_counts and sum(class_counts) > 0:
        n = int(sum(class_counts))
        chance = max(class_counts) / n
        correct = int(round(acc * n))
        p = float(_sps.binomtest(correct, n, chance, alternative="greater").pvalue)
        # Smallest number correct whose upper tail is below ALPHA: binom.sf(c - 1) <= ALPHA.
        c = int(_sps.binom.isf(ALPHA, n, chance)) + 1
        return ChanceTest(chance, n, c / n, p >= ALPHA, p)
    chance = 1.0 / max(1, num_classes)
    return ChanceTest(chance, None, chance + CHANCE_MARGIN, acc <= chance + CHANCE_MARGIN, None)


def spans_decades(values: Sequence[float], decades: float) -> bool:
    """True when the positive ``values`` span more than ``decades`` powers of ten."""
    pos = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    return len(pos) >= 2 and math.log10(max(pos) / min(pos)) > decades
