"""Findings: short sentences written from a study's numbers, each citing the numbers it rests on.

A finding never claims more than the statistics support: a difference is "significant" only when
Welch's test gives p < 0.05 (and the p-value is quoted), a comparison with one seed on either side
says that no test was possible, and differences that are not significant are called "within
noise at this n", not "no effect". The rules for chance level and overfitting are stated in the
report's notes (``METHOD_NOTES``) so a reader can check them.
"""

# Size: over 400 lines on purpose: one function per kind of finding, which share the phrasing
# rules of the docstring above; splitting them would scatter those rules.

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from .stats import ALPHA, ChanceTest, Comparison, chance_test, mean_curve, welch
from .tables import ArmSetting, RunData, batch_families, by_arm, numeric_axis
from .numbers import pct, points, pval
from sweeplab.vocabulary import lower_is_better

#: Overfitting needs the mean test accuracy to fall at least this far from its peak ...
OVERFIT_MIN_DROP = 0.02
#: ... and by more than this many standard errors of the final mean (seed-to-seed noise, or the
#: binomial error of one evaluation when there is one seed).
OVERFIT_SE_FACTOR = 2.0

METHOD_NOTES = (
    "Final values are from the last epoch of completed runs. Diverged runs have no final "
    "accuracy: they are left out of means and counted under outcomes.",
    "Trends along a numeric grid axis (one arm, one axis) are Spearman rank correlations between "
    "the axis value and each completed run's final value of the study metric, tested at the same α.",
    "Mean ± sample standard deviation (ddof=1) over seeds; n is the number of completed runs; "
    "the 95% CI is mean ± t(0.975, n−1)·std/√n. With n=1 there is no spread, no CI and no test.",
    "Best test accuracy is each run's maximum over its epochs (mean over completed runs), with the "
    "median of the epochs where the maxima were reached; epochs to 95% of best is the first epoch at "
    "which a run's test accuracy reached 95% of its own maximum; the train − test gap is final train "
    "minus final test accuracy, per run.",
    "Rows are ranked by the study metric, and the differences from the baseline (and from an arm's "
    "base), their Welch tests and the sweep trends use the same metric; the test set is reported "
    "beside it.",
    f"Differences are tested with Welch's unequal-variance t-test at α={ALPHA}; p-values are not "
    f"corrected for multiple comparisons, so with many arms some 'significant' results are "
    f"expected by chance alone.",
    f"Chance level: the accuracy of always answering the test set's most common class (1/k when "
    f"classes are balanced). A run is at chance when a one-sided exact binomial test on its "
    f"number of correct test answers cannot tell it from that accuracy at α={ALPHA} (when the "
    f"test-set size is unknown: accuracy ≤ 1/k + 2 points).",
    f"Overfitting: the mean test-accuracy curve of a setting peaks before its last epoch and its "
    f"final value is at least {OVERFIT_MIN_DROP * 100:.0f} points and {OVERFIT_SE_FACTOR:g} "
    f"standard errors below the peak, while the training loss kept falling after the peak.",
    "Time per epoch and images/s are each run's median over epochs (the first carries warm-up), "
    "peak memory its maximum; then averaged over runs. On the CPU, peak memory is the worker "
    "process's peak resident size, which never resets and includes earlier runs in that process.",
)


@dataclass(frozen=True)
class Finding:
    """One sentence (or a few) about the study."""

    kind: str
    """divergence, chance, overfitting, best, baseline, sweep, batch_size, outcomes"""
    text: str
    subjects: tuple[str, ...] = ()
    """Labels of the arm settings the finding is about (empty for study-wide statements)."""


def describe(s: ArmSetting, digits: int = 1) -> str:
    """``97.1% ± 0.4 (n=3)``: a setting's final test accuracy with its spread."""
    f = s.final_test_acc
    if f.n == 0:
        return "no completed run"
    spread = f" ± {100 * f.std:.{digits}f}" if f.std is not None else ""
    return f"{pct(f.mean, digits)}{spread} (n={f.n})"


def metric_name(metric: str) -> str:
    """``val_acc`` -> ``validation accuracy``, for sentences."""
    kind, _, what = metric.partition("_")
    return {"val": "validation", "test": "test", "train": "train"}.get(kind, kind) + " " + (
        {"acc": "accuracy"}.get(what, what))


def diff_text(diff: float | None, metric: str) -> str:
    """A difference in the study metric: points for accuracies, the raw value for losses."""
    if diff is None:
        return "-"
    return points(diff) if metric.endswith("acc") else f"{diff:+.3g}"


def comparison_text(c: Comparison) -> str:
    if c.p is None:
        return c.note or "no test"
    verdict = "significant" if c.significant else "not significant"
    return f"{verdict}, Welch {pval(c.p)}"


# ---------------------------------------------------------------------------------------- checks


def divergence(settings: Sequence[ArmSetting]) -> list[Finding]:
    out = []
    for s in settings:
        runs = s.diverged_runs
        if not runs:
            continue
        epochs = sorted(r.diverged_epoch for r in runs if r.diverged_epoch is not None)
        at = f"at epoch {epochs[0]}" if len(set(epochs)) == 1 else "at epochs " + ", ".join(map(str, epochs))
        steps = [r.detail.get("step") for r in runs if isinstance(r.detail.get("step"), int)]
        if steps:
            at += f" (step {min(steps)}" + (f"–{max(steps)}" if max(steps) != min(steps) else "") + ")"
        reason = runs[0].detail.get("reason") or runs[0].detail.get("text") or "non-finite loss"
        reason = reason.split(" at epoch")[0]
        seeds = ("seed " if len(runs) == 1 else "seeds ") + ", ".join(str(r.seed) for r in runs)
        out.append(Finding(
            "divergence",
            f"{s.label} diverged in {len(runs)} of {len(s.runs)} seeds ({seeds}) {at}: {reason}. "
            f"These runs have no final accuracy and are left out of its means.",
            (s.label,),
        ))
    if not out and any(s.trained_runs for s in settings):
        out.append(Finding("divergence", "No run diverged."))
    return out


def run_chance(run: RunData) -> ChanceTest | None:
    """The chance-level test of a completed run's final test accuracy."""
    final = run.final
    if final is None or final.get("test_acc") is None:
        return None
    confusion = final.get("test_confusion")
    counts = [int(sum(row)) for row in confusion] if isinstance(confusion, list) and confusion else None
    per_class = final.get("test_per_class_acc")
    k = len(confusion) if counts else len(per_class) if isinstance(per_class, list) else 0
    if not k:
        return None  # without the number of classes there is no chance level to compare with
    return chance_test(float(final["test_acc"]), counts, k)


def at_chance(s: ArmSetting) -> list[tuple[RunData, ChanceTest]]:
    """The completed runs of a setting whose final test accuracy is at chance level."""
    out = []
    for r in s.completed_runs:
        t = run_chance(r)
        if t is not None and t.at_chance:
            out.append((r, t))
    return out


def chance(settings: Sequence[ArmSetting]) -> list[Finding]:
    out = []
    for s in settings:
        hits = at_chance(s)
        if not hits:
            continue
        t = hits[0][1]
        accs = ", ".join(pct(r.final["test_acc"]) for r, _ in hits)  # type: ignore[index]
        size = f" on {t.n_test} test examples" if t.n_test else ""
        out.append(Finding(
            "chance",
            f"{s.label} ended at chance level in {len(hits)} of {s.final_test_acc.n} completed seeds "
            f"(final test accuracy {accs}; chance is {pct(t.chance)}, and below {pct(t.threshold)}{size} "
            f"an accuracy is not significantly above it at α={ALPHA}): it learned nothing usable.",
            (s.label,),
        ))
    return out


@dataclass(frozen=True)
class Overfit:
    peak_epoch: int
    peak: float
    final: float
    last_epoch: int
    threshold: float
    train_loss_at_peak: float
    train_loss_final: float
    train_acc_at_peak: float | None
    train_acc_final: float | None


def overfitting_of(s: ArmSetting) -> Overfit | None:
    """The overfitting pattern in a setting's mean curves over completed runs, or None."""
    runs = s.completed_runs
    if not runs or at_chance(s):
        return None
    test = mean_curve([r.curve("test_acc") for r in runs])
    train_loss = dict((e, m.mean) for e, m in mean_curve([r.curve("train_loss") for r in runs]))
    train_acc = dict((e, m.mean) for e, m in mean_curve([r.curve("train_acc") for r in runs]))
    if len(test) < 3:
        return None
    peak_epoch, peak = max(test, key=lambda p: (p[1].mean, -p[0]))
    last_epoch, last = test[-1]
    if peak_epoch == last_epoch or last.n < len(runs):
        return None
    drop = peak.mean - last.mean
    # Noise of the final mean: spread over seeds, or with one seed the binomial error of one test
    # evaluation (sqrt(p(1-p)/n_test)), when the test-set size is known.
    if s.final_test_acc.n >= 2:
        se = s.final_test_acc.std / s.final_test_acc.n ** 0.5
    else:
        t = run_chance(runs[0])
        se = (last.mean * (1 - last.mean) / t.n_test) ** 0.5 if t and t.n_test else 0.0
    threshold = max(OVERFIT_MIN_DROP, OVERFIT_SE_FACTOR * se)
    tl_peak, tl_final = train_loss.get(peak_epoch), train_loss.get(last_epoch)
    if drop < threshold or tl_peak is None or tl_final is None or not tl_final < tl_peak:
        return None
    return Overfit(peak_epoch, peak.mean, last.mean, last_epoch, threshold, tl_peak, tl_final,
                   train_acc.get(peak_epoch), train_acc.get(last_epoch))


def overfitting(settings: Sequence[ArmSetting]) -> list[Finding]:
    out = []
    for s in settings:
        o = overfitting_of(s)
        if o is None:
            continue
        acc = ""
        if o.train_acc_at_peak is not None and o.train_acc_final is not None:
            acc = f", train accuracy {pct(o.train_acc_at_peak)} → {pct(o.train_acc_final)}"
        out.append(Finding(
            "overfitting",
            f"{s.label} overfits: mean test accuracy peaked at epoch {o.peak_epoch} ({pct(o.peak)}) and "
            f"fell by {100 * (o.peak - o.final):.1f} points to {pct(o.final)} at epoch {o.last_epoch} "
            f"(noise threshold {100 * o.threshold:.1f} points), while training kept improving "
            f"(train loss {o.train_loss_at_peak:.3g} → {o.train_loss_final:.3g}{acc}). "
            f"Stopping at epoch {o.peak_epoch} would have scored higher.",
            (s.label,),
        ))
    return out


def best(ranked: Sequence[ArmSetting], metric: str) -> list[Finding]:
    scored = [s for s in ranked if s.rank is not None]
    if not scored:
        if any(s.completed_runs for s in ranked):
            return [Finding("best", f"No completed run recorded {metric}, so no arm can be ranked by it.")]
        return [Finding("best", "No run has completed yet, so no arm can be ranked.")]
    top = scored[0]
    name = metric.replace("_", " ")
    value = _metric_text(top, metric)
    if len(scored) == 1:
        return [Finding("best", f"Only {top.label} has completed runs ({name} {value}).", (top.label,))]
    nxt = scored[1]
    c = welch(top.metric, nxt.metric)
    diff = abs(c.diff) if c.diff is not None else None
    lead = f"{100 * diff:.2f} points" if diff is not None and metric.endswith("acc") else (
        f"{diff:.3g}" if diff is not None else "-")
    if c.p is None:
        verdict = f"a test of the lead was not possible ({c.note})"
    elif c.significant:
        verdict = f"the lead is significant (Welch {pval(c.p)})"
    else:
        verdict = f"the lead is not significant (Welch {pval(c.p)}): the two are within noise at this n"
    return [Finding(
        "best",
        f"Best arm setting by final {name}: {top.label}, {value}. Next: {nxt.label}, "
        f"{_metric_text(nxt, metric)}; lead {lead}, and {verdict}.",
        (top.label, nxt.label),
    )]


def _metric_text(s: ArmSetting, metric: str) -> str:
    m = s.metric
    if metric.endswith("acc"):
        spread = f" ± {100 * m.std:.1f}" if m.std is not None else ""
        return f"{pct(m.mean)}{spread} (n={m.n})"
    spread = f" ± {m.std:.3g}" if m.std is not None else ""
    return f"{m.mean:.4g}{spread} (n={m.n})"


def baseline(settings: Sequence[ArmSetting], metric: str = "test_acc") -> list[Finding]:
    base = next((s for s in settings if s.is_baseline), None)
    if base is None:
        return [Finding("baseline", "The study has no baseline arm, so no arm is compared with one.")]
    if base.metric.n == 0:
        return [Finding("baseline", "The baseline has no completed run yet: nothing can be compared with it.")]
    higher = not lower_is_better(metric)
    groups: dict[str, list[str]] = {"better": [], "worse": [], "noise": [], "untested": []}
    subjects = []
    for s in settings:
        c = s.vs_baseline
        if s.is_baseline or c is None or c.diff is None:
            continue
        subjects.append(s.label)
        item = f"{s.label} ({diff_text(c.diff, metric)}, {c.note if c.p is None else pval(c.p)})"
        if c.p is None:
            groups["untested"].append(item)
        elif c.significant:
            groups["better" if (c.diff > 0) == higher else "worse"].append(item)
        else:
            groups["noise"].append(item)
    clauses = []
    if groups["better"]:
        clauses.append("Significantly better: " + "; ".join(groups["better"]))
    if groups["worse"]:
        clauses.append("Significantly worse: " + "; ".join(groups["worse"]))
    if groups["noise"]:
        clauses.append(f"Within noise at this n (not significant at α={ALPHA}): " + "; ".join(groups["noise"]))
    if groups["untested"]:
        clauses.append("No test possible: " + "; ".join(groups["untested"]))
    if not clauses:
        clauses.append("No other arm setting has completed runs yet")
    unit = "points, " if metric.endswith("acc") else ""
    text = (f"Against the baseline ({_metric_text(base, metric)} final {metric_name(metric)}; differences in "
            f"{unit}Welch's test). " + ". ".join(clauses) + ".")
    tested = len(groups["better"]) + len(groups["worse"]) + len(groups["noise"])
    if tested >= 5:
        text += (f" With {tested} tests at α={ALPHA}, about {ALPHA * tested:.1f} would come out "
                 "significant by chance alone.")
    if metric != "test_acc":
        tests = [f"{s.label} {diff_text(s.vs_baseline_test.diff, 'test_acc')}" for s in settings
                 if s.vs_baseline_test is not None and s.vs_baseline_test.diff is not None]
        if tests:
            text += " On the test set (final test accuracy against the baseline's): " + "; ".join(tests) + "."
    return [Finding("baseline", text, tuple(subjects))]


def stacked(settings: Sequence[ArmSetting], metric: str = "test_acc") -> list[Finding]:
    """Arms built on each other (``base = ...``): each chain in order, every step against the step
    before it as well as against the baseline."""
    by_arm = {s.arm: s for s in settings}
    children = {s.base for s in settings if s.base}
    out = []
    for leaf in sorted((s for s in settings if s.base and s.arm not in children), key=lambda s: s.position):
        chain = [leaf]
        while chain[-1].base in by_arm and by_arm[chain[-1].base] not in chain:
            chain.append(by_arm[chain[-1].base])
        steps = []
        for s in reversed(chain):
            c, b = s.vs_base, s.vs_baseline
            own = (f"{diff_text(c.diff, metric)} vs {s.base} ({c.note if c.p is None else pval(c.p)})"
                   if c is not None and c.diff is not None else "first step")
            total = f", {diff_text(b.diff, metric)} vs the baseline" if b is not None and b.diff is not None else ""
            steps.append(f"{s.label}: {_metric_text(s, metric)}, {own}{total}")
        out.append(Finding("stacked", f"Built step by step (each arm on the one before, final {metric_name(metric)}): "
                                      + "; then ".join(steps) + ".", tuple(s.label for s in reversed(chain))))
    return out


def batch_size(settings: Sequence[ArmSetting], device_is_cpu: bool) -> list[Finding]:
    """Time per epoch and memory against batch size, among settings that differ only in it."""
    out = []
    for by_bs in batch_families(settings):
        sizes = sorted(by_bs)
        parts = []
        for bs in sizes:
            s = by_bs[bs]
            t, ips = s.epoch_time_s.mean, s.images_per_s.mean
            parts.append(f"batch {bs}: {t:.3g} s/epoch, {ips:,.0f} images/s" if t is not None and ips is not None
                         else f"batch {bs}: no timing")
        lo, hi = by_bs[sizes[0]], by_bs[sizes[-1]]
        text = "Batch size (other settings equal): " + "; ".join(parts) + "."
        if lo.epoch_time_s.mean and hi.epoch_time_s.mean:
            ratio = lo.epoch_time_s.mean / hi.epoch_time_s.mean
            text += (f" An epoch at batch {sizes[-1]} takes {1 / ratio:.2f}× the time of one at batch {sizes[0]}"
                     + (f" ({ratio:.1f}× faster)." if ratio > 1 else "."))
            c = welch(hi.epoch_time_s, lo.epoch_time_s)
            if c.p is not None:
                text += f" The time difference is {comparison_text(c)}."
        mems = [by_bs[b].peak_mem_mb.mean for b in sizes]
        if all(m is not None for m in mems):
            mem = "; ".join(f"batch {b}: {m:,.0f} MiB" for b, m in zip(sizes, mems))
            if device_is_cpu:
                text += (f" Peak memory ({mem}) is the worker process's peak resident size on the CPU, "
                         "which includes earlier runs in the same process, so it cannot be attributed "
                         "to batch size here.")
            else:
                text += f" Peak memory: {mem}."
        acc = [(b, by_bs[b]) for b in sizes if by_bs[b].final_test_acc.n]
        if len(acc) >= 2:
            c = welch(acc[-1][1].final_test_acc, acc[0][1].final_test_acc)
            text += (f" Final test accuracy goes from {describe(acc[0][1])} at batch {acc[0][0]} to "
                     f"{describe(acc[-1][1])} at batch {acc[-1][0]} ({comparison_text(c)}).")
        out.append(Finding("batch_size", text, tuple(by_bs[b].label for b in sizes)))
    return out


def outcomes(settings: Sequence[ArmSetting]) -> list[Finding]:
    """Runs that did not finish (out of memory, failed, interrupted, still to run) or stopped early."""
    out = []
    unique = {r.run_id: r for s in settings for r in s.runs}.values()
    for status, verb in (("oom", "ran out of memory"), ("failed", "failed"), ("interrupted", "were interrupted")):
        runs = [r for r in unique if r.status == status]
        if not runs:
            continue
        labels = sorted({r.label for r in runs})
        detail = ""
        if status == "oom":
            sizes = sorted({r.detail.get("batch_size") for r in runs if r.detail.get("batch_size")})
            detail = f" (at batch size {', '.join(map(str, sizes))})" if sizes else ""
        elif status == "failed":
            text = (runs[0].detail.get("text") or "").strip().splitlines()
            detail = f" (first error: {text[-1][:160]})" if text else ""
        out.append(Finding("outcomes", f"{len(runs)} run(s) {verb}{detail}: {', '.join(labels)}. "
                                       "They are not in the accuracy statistics.", tuple(labels)))
    stopped = [r for r in unique if r.status == "completed" and "stopped_early" in r.detail]
    if stopped:
        labels = sorted({r.label for r in stopped})
        at = sorted({r.detail["stopped_early"] for r in stopped})
        out.append(Finding("outcomes", f"{len(stopped)} run(s) stopped early (early_stop, at epoch "
                                       f"{', '.join(map(str, at))}): {', '.join(labels)}. Their final numbers are "
                                       "those of the epoch they stopped at.", tuple(labels)))
    left = [r for r in unique if r.status in ("pending", "running")]
    if left:
        out.append(Finding("outcomes", f"{len(left)} run(s) are still pending or running: the numbers "
                                       "are partial and will change.", ()))
    return out


def sweeps(settings: Sequence[ArmSetting], metric: str = "test_acc") -> list[Finding]:
    """For each arm whose only grid axis is numeric (lr, batch size, sequence length...): how the
    final study metric moves along it, with a Spearman rank correlation over the runs."""
    out = []
    for arm, members in by_arm(settings).items():
        axis = numeric_axis(members)
        if axis is None or any(set(s.axes) != {axis} for s in members):
            continue  # no single numeric axis: other axes would mix into the trend
        pts = sorted((s for s in members if s.metric.n), key=lambda s: s.axes[axis])
        if len(pts) < 3:
            continue
        xs = [float(s.axes[axis]) for s in pts for _ in s.metric.values]
        ys = [v for s in pts for v in s.metric.values]
        sign = -1.0 if lower_is_better(metric) else 1.0
        top = max(pts, key=lambda s: sign * s.metric.mean)
        name = metric_name(metric)
        text = (f"{arm}: final {name} against {axis} goes from {_metric_text(pts[0], metric)} at "
                f"{pts[0].axes[axis]} to {_metric_text(pts[-1], metric)} at {pts[-1].axes[axis]}, "
                f"{'lowest' if sign < 0 else 'highest'} at {axis}={top.axes[axis]} ({_metric_text(top, metric)}). ")
        if min(s.metric.n for s in pts) < 2:
            out.append(Finding("sweep", text + "With one seed at some values, no trend is tested (n=1, no test).",
                               tuple(s.label for s in pts)))
            continue
        rho, p = (math.nan, math.nan) if len(set(ys)) < 2 else stats.spearmanr(xs, ys)
        if not math.isfinite(p):
            text += "Every run scored the same, so there is no trend to test."
        elif p < ALPHA:
            text += (f"It {'falls' if rho < 0 else 'rises'} as {axis} grows (Spearman ρ={rho:.2f} over "
                     f"{len(ys)} runs, {pval(p)}).")
        else:
            text += (f"No monotonic trend with {axis} is significant at this n (Spearman ρ={rho:.2f} over "
                     f"{len(ys)} runs, {pval(p)}).")
        out.append(Finding("sweep", text, tuple(s.label for s in pts)))
    return out


def write_findings(ranked: Sequence[ArmSetting], metric: str, device_is_cpu: bool) -> list[Finding]:
    """Every finding, in reading order: the answer first, then what went wrong, then details."""
    return [
        *best(ranked, metric),
        *baseline(ranked, metric),
        *stacked(ranked, metric),
        *sweeps(ranked, metric),
        *divergence(ranked),
        *chance(ranked),
        *overfitting(ranked),
        *batch_size(ranked, device_is_cpu),
        *outcomes(ranked),
    ]

