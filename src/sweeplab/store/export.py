"""A study's results read back: every (arm, run) link with its run's record, epoch rows and step rows.

The one reader of a study's stored results: the report (``report.tables.load_runs``), ``sweeplab
export`` and the Python API (``sweeplab.epochs`` / ``sweeplab.runs``) all start from
:func:`study_results`; :func:`export_tables` flattens it into rows for CSV, JSON and DataFrames,
:func:`step_table` the evaluations of runs with ``eval_every_steps``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweeplab.config.load import flatten
from sweeplab.store.records import RunRecord, StudyRunRecord

if TYPE_CHECKING:
    from sweeplab.store.store import Store

#: Epoch-row keys that are not per-epoch scalars (exported separately or not at all).
_NON_SCALAR = ("test_confusion",)


@dataclass(frozen=True)
class LinkedRun:
    """One link of a study (arm, label, seed) with its run's record, epoch rows and step rows
    (evaluations every N steps; empty without ``eval_every_steps``)."""

    link: StudyRunRecord
    run: RunRecord
    epochs: tuple[dict[str, Any], ...]
    steps: tuple[dict[str, Any], ...] = ()


def study_results(store: Store, study: str, version: int | None = None, *,
                  extra: str = "all") -> list[LinkedRun]:
    """Every link of the study's default version (or ``version``) in study order; a run shared by
    two arms is read once and appears under both.

    ``extra``: which epoch rows carry the extra metrics (per-class accuracy, confusion matrix):
    ``"all"``, or ``"final"``, only each run's last row, which is all a comparison table uses
    (the dashboard recomputes its table this way, several times faster on long runs)."""
    if extra not in ("all", "final"):
        raise ValueError(f"extra must be 'all' or 'final', not {extra!r}")
    records = {r.id: r for r in store.list_runs(study=study, version=version)}
    read: dict[str, tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]] = {}
    out = []
    for link in store.study_runs(study, version):
        if link.run_id not in read:
            read[link.run_id] = (_read_epochs(store, link.run_id, extra), tuple(store.steps(link.run_id)))
        out.append(LinkedRun(link, records[link.run_id], *read[link.run_id]))
    return out


def _read_epochs(store: Store, run_id: str, extra: str) -> tuple[dict[str, Any], ...]:
    if extra == "all":
        return tuple(store.epochs(run_id))
    rows = store.epochs(run_id, extra=False)
    if rows:
        rows[-1:] = store.epochs(run_id, after=rows[-1]["epoch"] - 1)
    return tuple(rows)


def class_columns(classes: Any, k: int) -> list[str]:
    """Export column of each class's test accuracy: ``test_acc_airplane`` by the dataset's class
    names, ``test_acc_class3`` where there are none, or they are numbers (digits' "0".."9") or
    would collide once made safe for a column name."""
    fallback = [f"test_acc_class{i}" for i in range(k)]
    if not isinstance(classes, list) or len(classes) != k:
        return fallback
    safe = [re.sub(r"\W+", "_", str(c)).strip("_") for c in classes]
    if any(not c or c.isdigit() for c in safe) or len(set(safe)) != k:
        return fallback
    return [f"test_acc_{c}" for c in safe]


def _epoch_row(study: str, linked: LinkedRun, row: dict[str, Any], classes: Any = None) -> dict[str, Any]:
    link = linked.link
    flat = {"study": study, "arm": link.arm, "label": link.label, "seed": link.seed, "run_id": linked.run.id,
            "status": linked.run.status, "epoch": row.get("epoch")}
    for k, v in row.items():
        if k in flat or k in _NON_SCALAR:
            continue
        if k == "test_per_class_acc" and isinstance(v, list):
            flat.update(dict(zip(class_columns(classes, len(v)), v)))
        elif not isinstance(v, (list, dict)):
            flat[k] = v
    return flat


def _run_row(study: str, linked: LinkedRun) -> dict[str, Any]:
    link, r = linked.link, linked.run
    row = {"study": study, "arm": link.arm, "label": link.label, "seed": link.seed, "run_id": r.id,
           "status": r.status, "status_detail": r.status_detail, "epochs_done": link.epochs_done,
           "params": r.params, "flops": r.flops, "batch_size_used": r.batch_size_used,
           "wall_time_s": r.wall_time_s, "data_source": r.data_source, "data_checksum": r.data_checksum,
           "continued_from": r.continued_from, "continued_epochs": r.continued_epochs}
    row.update({f"config.{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                for k, v in flatten(r.config).items()})
    return row


def step_table(linked: list[LinkedRun], study: str) -> list[dict[str, Any]]:
    """One flat row per run-evaluation (``sweeplab export --table steps``): the link's study, arm,
    label, seed, run_id and status, then step, epoch and the step metrics."""
    out = []
    for lr in linked:
        link = lr.link
        head = {"study": study, "arm": link.arm, "label": link.label, "seed": link.seed, "run_id": lr.run.id,
                "status": lr.run.status}
        out += [{**head, **{k: v for k, v in row.items() if k != "run_id"}} for row in lr.steps]
    return out


def export_steps(store: Store, study: str, version: int | None = None) -> list[dict[str, Any]]:
    """The step rows of a study's default version (or ``version``), flat (see :func:`step_table`)."""
    return step_table(study_results(store, study, version), study)


def export_tables(store: Store, study: str, version: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(epoch rows, run rows) of a study's default version (or ``version``), flat, ready for CSV or JSON."""
    return tables_of(study_results(store, study, version), study)


def tables_of(linked: list[LinkedRun], study: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(epoch rows, run rows) of already read results (see :func:`export_tables`)."""
    epochs = []
    for lr in linked:
        classes = lr.run.env.get("classes")  # parsed once per run, not per row
        epochs += [_epoch_row(study, lr, row, classes) for row in lr.epochs]
    return epochs, [_run_row(study, lr) for lr in linked]
