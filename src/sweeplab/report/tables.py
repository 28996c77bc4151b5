"""From the run store to the numbers of a report: runs with their epoch rows, grouped into arm
settings (one row of the comparison table each), and the study header.

An *arm setting* is one (arm, grid point): the runs of all seeds with the same label. Its numbers
are summaries over those runs. Conventions, stated once here and in the report:

- "final" means the last epoch of a *completed* run. A diverged run has no final accuracy (its
  last row is from before the loss blew up); it is left out of accuracy means and counted in the
  outcomes. Interrupted, failed, pending or still running runs are not final either.
- "best" is a run's highest test accuracy over its epochs; the row gives the mean over completed
  runs and the median of the epochs where those maxima were reached.
- time per epoch and train images/s are a run's *median* over epochs (the first epoch carries
  one-off warm-up), peak memory its maximum; each is then averaged over every run that trained
  at least one epoch, diverged ones included (their epochs were real).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sweeplab.config import flatten
from sweeplab.store import Store
from sweeplab.store.export import study_results
from sweeplab.vocabulary import BASELINE_ARM, lower_is_better, parse_detail

from .stats import Comparison, Summary, epochs_to_fraction, summarize, welch

#: Config keys that never count as a difference between runs (they do not change results, or
#: they are what the study varies by construction).
IGNORED_CONFIG_KEYS = frozenset({"seed", "threads"})


@dataclass(frozen=True)
class RunData:
    """One run as a report sees it: link (arm, label, seed), outcome, metadata and epoch rows."""

    run_id: str
    arm: str
    label: str
    seed: int
    status: str
    status_detail: str | None
    config: dict[str, Any]
    epochs: tuple[dict[str, Any], ...]
    epochs_planned: int | None
    params: int | None
    flops: float | None
    batch_size: int | None
    wall_time_s: float
    device: str | None
    env: dict[str, Any]
    data_source: str | None
    data_checksum: str | None
    started_at: str | None
    finished_at: str | None
    #: The shorter run this one continued, and how many of its epochs it shares (see train.continuation).
    continued_from: str | None = None
    continued_epochs: int | None = None
    #: Evaluations every N steps (``eval_every_steps``), one dict per step row; empty without.
    steps: tuple[dict[str, Any], ...] = ()

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def final(self) -> dict[str, Any] | None:
        """The last epoch row of a completed run; None for any other outcome."""
        return self.epochs[-1] if self.completed and self.epochs else None

    @property
    def detail(self) -> dict[str, Any]:
        """``status_detail`` parsed when it is JSON (diverged, oom), else ``{"text": ...}``."""
        return parse_detail(self.status_detail)

    @property
    def diverged_epoch(self) -> int | None:
        """The epoch in which a diverged run's loss became non-finite (no row exists for it)."""
        if self.status != "diverged":
            return None
        epoch = self.detail.get("epoch")
        return int(epoch) if isinstance(epoch, (int, float)) else len(self.epochs) + 1

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """``(epoch, value)`` of a metric over the run's rows, non-finite and missing values left out."""
        out = []
        for row in self.epochs:
            v = row.get(metric)
            if isinstance(v, (int, float)) and math.isfinite(v):
                out.append((int(row["epoch"]), float(v)))
        return out

    def step_curve(self, metric: str) -> list[tuple[int, float]]:
        """``(global step, value)`` of a metric over the run's step rows (finite values only)."""
        return [(int(row["step"]), float(v)) for row in self.steps
                if isinstance(v := row.get(metric), (int, float)) and math.isfinite(v)]

    def best(self, metric: str = "test_acc") -> tuple[int, float] | None:
        """(epoch, value) of the run's highest ``metric`` (first such epoch), None without rows."""
        points = self.curve(metric)
        if not points:
            return None
        return max(points, key=lambda p: (p[1], -p[0]))


@dataclass
class ArmSetting:
    """One row of the comparison table: an (arm, grid point) over seeds."""

    arm: str
    label: str
    axes: dict[str, Any]
    position: int
    runs: list[RunData]
    is_baseline: bool = False
    base: str | None = None
    """The arm this setting's arm builds on (``base = "bn"`` in the study file), else None."""
    outcomes: dict[str, int] = field(default_factory=dict)
    params: int | None = None
    flops: float | None = None
    batch_size: int | None = None
    final_test_acc: Summary = field(default_factory=Summary)
    final_train_acc: Summary = field(default_factory=Summary)
    final_test_loss: Summary = field(default_factory=Summary)
    final_train_loss: Summary = field(default_factory=Summary)
    gap: Summary = field(default_factory=Summary)
    """Final train accuracy minus final test accuracy, per run."""
    best_test_acc: Summary = field(default_factory=Summary)
    best_epoch: float | None = None
    """Median over completed runs of the epoch of each run's best test accuracy."""
    epochs_to_95: Summary = field(default_factory=Summary)
    epoch_time_s: Summary = field(default_factory=Summary)
    images_per_s: Summary = field(default_factory=Summary)
    peak_mem_mb: Summary = field(default_factory=Summary)
    final_val_acc: Summary = field(default_factory=Summary)
    best_val_acc: Summary = field(default_factory=Summary)
    metric: Summary = field(default_factory=Summary)
    """Final value of the study's metric, per completed run: what the table is sorted by."""
    vs_baseline: Comparison | None = None
    """Final study metric minus the baseline's, with Welch's test; None for the baseline itself
    or when the study has no baseline."""
    vs_base: Comparison | None = None
    """Final study metric minus the parent arm's (``base``), with Welch's test: the step's own effect."""
    vs_baseline_test: Comparison | None = None
    """Final test accuracy minus the baseline's, when the study metric is another one (shown beside)."""
    description: str = ""
    """The arm's ``description`` from the study file."""
    rank: int | None = None
    """1 for the best setting by the study metric; None for settings without a completed run."""
    per_class_acc: list[float] | None = None
    """Final test accuracy of each class, mean over completed runs."""
    confusion: list[list[int]] | None = None
    """Final test confusion matrix (rows: true class), summed over completed runs."""
    reference: dict[str, Any] = field(default_factory=dict)
    """Published numbers for this setting from the study's ``reference`` table."""

    @property
    def completed_runs(self) -> list[RunData]:
        return [r for r in self.runs if r.completed and r.epochs]

    @property
    def trained_runs(self) -> list[RunData]:
        """Runs with at least one epoch row, whatever their outcome."""
        return [r for r in self.runs if r.epochs]

    @property
    def diverged_runs(self) -> list[RunData]:
        return [r for r in self.runs if r.status == "diverged"]

    @property
    def is_best(self) -> bool:
        return self.rank == 1


def load_runs(store: Store, study: str, version: int | None = None, *, extra: str = "all") -> list[RunData]:
    """Every (arm, run) link of the study's default version (or ``version``) with its run's
    record and epoch rows, in link order (read by ``store.export.study_results``; ``extra="final"``:
    the extra metrics of each run's last row only, all that the comparison table needs)."""
    out = []
    for linked in study_results(store, study, version, extra=extra):
        link, rec = linked.link, linked.run
        env = rec.env
        out.append(RunData(
            run_id=rec.id, arm=link.arm, label=link.label or link.arm, seed=link.seed, status=rec.status,
            status_detail=rec.status_detail, config=rec.config, epochs=linked.epochs,
            epochs_planned=rec.epochs_planned, params=rec.params, flops=rec.flops,
            batch_size=rec.batch_size_used, wall_time_s=rec.wall_time_s or 0.0,
            device=env.get("device") or rec.device, env=env, data_source=rec.data_source,
            data_checksum=rec.data_checksum, started_at=rec.started_at, finished_at=rec.finished_at,
            continued_from=rec.continued_from, continued_epochs=rec.continued_epochs, steps=linked.steps,
        ))
    return out


def _axes_by_label(spec: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["arm"], r["label"]): dict(r.get("axes") or {}) for r in spec.get("runs", [])}


def group_settings(runs: list[RunData], spec: Mapping[str, Any]) -> list[ArmSetting]:
    """One ArmSetting per (arm, label), in study order, with every number of its table row."""
    axes = _axes_by_label(spec)
    groups: dict[tuple[str, str], list[RunData]] = {}
    for run in runs:
        groups.setdefault((run.arm, run.label), []).append(run)
    arms = {a["name"]: a for a in spec.get("arms", [])}
    settings = [
        ArmSetting(arm=arm, label=label, axes=axes.get((arm, label), {}), position=i, runs=members,
                   is_baseline=arm == BASELINE_ARM, base=arms.get(arm, {}).get("base"),
                   description=str(arms.get(arm, {}).get("description") or ""))
        for i, ((arm, label), members) in enumerate(groups.items())
    ]
    for s in settings:
        _fill(s)
    return settings


def _first(values: list[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _final(runs: list[RunData], key: str) -> Summary:
    return summarize([r.final.get(key) for r in runs if r.final is not None])


def _fill(s: ArmSetting) -> None:
    done = s.completed_runs
    trained = s.trained_runs
    for r in s.runs:
        s.outcomes[r.status] = s.outcomes.get(r.status, 0) + 1
    s.params = _first([r.params for r in s.runs])
    s.flops = _first([r.flops for r in s.runs])
    s.batch_size = _first([r.batch_size for r in s.runs]) or _first([r.config.get("batch_size") for r in s.runs])
    if s.axes.get("batch_size") == "max" and isinstance(s.batch_size, int):
        s.axes = {**s.axes, "batch_size": s.batch_size}  # a grid's "max" is shown at the size it resolved to
    s.final_test_acc = _final(done, "test_acc")
    s.final_train_acc = _final(done, "train_acc")
    s.final_test_loss = _final(done, "test_loss")
    s.final_train_loss = _final(done, "train_loss")
    s.final_val_acc = _final(done, "val_acc")
    gaps = []
    for r in done:
        tr, te = r.final.get("train_acc"), r.final.get("test_acc")  # type: ignore[union-attr]
        if tr is not None and te is not None:
            gaps.append(tr - te)
    s.gap = summarize(gaps)
    bests = [r.best("test_acc") for r in done]
    s.best_test_acc = summarize([b[1] for b in bests if b])
    epochs = [b[0] for b in bests if b]
    s.best_epoch = float(statistics.median(epochs)) if epochs else None
    s.best_val_acc = summarize([b[1] for b in (r.best("val_acc") for r in done) if b])
    s.epochs_to_95 = summarize([epochs_to_fraction(r.curve("test_acc"), 0.95) for r in done])
    s.epoch_time_s = summarize([_median(r.curve("epoch_time_s")) for r in trained])
    s.images_per_s = summarize([_median(r.curve("train_images_per_s")) for r in trained])
    s.peak_mem_mb = summarize([max((v for _, v in r.curve("peak_mem_mb")), default=None) for r in trained])
    per_class = [r.final.get("test_per_class_acc") for r in done]  # type: ignore[union-attr]
    per_class = [p for p in per_class if isinstance(p, list) and p]
    if per_class and len({len(p) for p in per_class}) == 1:
        s.per_class_acc = [float(sum(col) / len(col)) for col in zip(*per_class)]
    mats = [r.final.get("test_confusion") for r in done]  # type: ignore[union-attr]
    mats = [m for m in mats if isinstance(m, list) and m]
    if mats and len({len(m) for m in mats}) == 1:
        k = len(mats[0])
        s.confusion = [[int(sum(m[i][j] for m in mats)) for j in range(k)] for i in range(k)]


def _median(curve: list[tuple[int, float]]) -> float | None:
    return float(statistics.median(v for _, v in curve)) if curve else None


def metric_higher_is_better(metric: str) -> bool:
    return not lower_is_better(metric)


def rank_settings(settings: list[ArmSetting], metric: str) -> list[ArmSetting]:
    """Fill each setting's study-metric summary, rank and baseline comparison; return them sorted.

    Sorted by the mean final value of the study metric (best first); settings without a completed
    run keep their study order at the end.
    """
    for s in settings:
        s.metric = _final(s.completed_runs, metric)
    sign = -1.0 if metric_higher_is_better(metric) else 1.0
    scored = sorted((s for s in settings if s.metric.n), key=lambda s: (sign * s.metric.mean, s.position))
    for i, s in enumerate(scored, start=1):
        s.rank = i
    baseline = next((s for s in settings if s.is_baseline), None)
    by_arm = {s.arm: s for s in settings}  # a base arm is one config, so one setting
    for s in settings:
        if baseline is not None and s is not baseline:
            s.vs_baseline = welch(s.metric, baseline.metric)
            if metric != "test_acc":
                s.vs_baseline_test = welch(s.final_test_acc, baseline.final_test_acc)
        if s.base in by_arm:
            s.vs_base = welch(s.metric, by_arm[s.base].metric)
    return scored + [s for s in settings if not s.metric.n]


def reference_config(runs: list[RunData]) -> dict[str, Any]:
    """What "the baseline" config is for config diffs, flattened.

    The baseline arm's config when the study has one (seed aside, all its runs agree), else the
    most common value of each key over the study's runs.
    """
    base = [r for r in runs if r.arm == BASELINE_ARM]
    if base:
        return flatten(base[0].config)
    counts: dict[str, dict[str, tuple[int, Any]]] = {}
    for r in runs:
        for key, value in flatten(r.config).items():
            slot = counts.setdefault(key, {})
            tag = json.dumps(value, sort_keys=True, default=str)
            n, _ = slot.get(tag, (0, value))
            slot[tag] = (n + 1, value)
    return {k: max(v.values(), key=lambda nv: nv[0])[1] for k, v in counts.items()}


def config_diff(config: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """Keys of ``config`` whose value differs from ``reference`` (flattened, seed left out)."""
    flat = flatten(config)
    return {
        k: v for k, v in flat.items()
        if k not in IGNORED_CONFIG_KEYS and (k not in reference or reference[k] != v)
    }


def numeric_axis(settings: Sequence[ArmSetting]) -> str | None:
    """The one grid axis of an arm whose values are all numbers (bools excluded), else None."""
    keys = list(dict.fromkeys(k for s in settings for k in s.axes))
    numeric = [k for k in keys if all(isinstance(s.axes.get(k), (int, float)) and not isinstance(s.axes.get(k), bool)
                                      for s in settings)]
    values = {k: {s.axes[k] for s in settings} for k in numeric}
    numeric = [k for k in numeric if len(values[k]) >= 2]
    return numeric[0] if len(numeric) == 1 else None


def by_arm(settings: Sequence[ArmSetting]) -> dict[str, list[ArmSetting]]:
    """Settings grouped by arm, arms and settings in the order given."""
    arms: dict[str, list[ArmSetting]] = {}
    for s in settings:
        arms.setdefault(s.arm, []).append(s)
    return arms


def batch_families(settings: Sequence[ArmSetting]) -> list[dict[int, ArmSetting]]:
    """Groups of settings whose configs differ only in batch size (seed and threads aside), each
    as batch size -> setting (the first one per size), with two sizes or more."""
    families: dict[str, list[ArmSetting]] = {}
    for s in settings:
        if not s.trained_runs or not isinstance(s.batch_size, int):
            continue
        rest = flatten(s.trained_runs[0].config)
        for key in ("batch_size", "seed", "threads"):
            rest.pop(key, None)
        families.setdefault(repr(sorted(rest.items(), key=lambda kv: kv[0])), []).append(s)
    out = []
    for members in families.values():
        by_bs: dict[int, ArmSetting] = {}
        for s in members:
            by_bs.setdefault(s.batch_size, s)  # type: ignore[arg-type]
        if len(by_bs) >= 2:
            out.append(dict(sorted(by_bs.items())))
    return out
