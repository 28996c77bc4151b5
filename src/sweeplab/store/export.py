"""A study's results as flat rows: one per run-epoch and one per run, for CSV, JSON and DataFrames.

The one reader of a study's stored results for exports: ``sweeplab export`` and the Python API
(``sweeplab.epochs`` / ``sweeplab.runs``) both call :func:`export_tables`.
"""

from __future__ import annotations

import json
from typing import Any

from sweeplab.config.load import flatten


#: Epoch-row keys that are not per-epoch scalars (exported separately or not at all).
_NON_SCALAR = ("test_confusion",)


def export_tables(store, study: str, version: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(epoch rows, run rows) of a study's default version (or ``version``), flat, ready for CSV or JSON."""
    runs = {r.id: r for r in store.list_runs(study=study, version=version)}
    epochs = []
    for row in store.all_epochs(study, version):
        flat = {k: row.get(k) for k in ("study", "arm", "label", "seed", "run_id", "status", "epoch")}
        for k, v in row.items():
            if k in flat or k in _NON_SCALAR:
                continue
            if k == "test_per_class_acc" and isinstance(v, list):
                flat.update({f"test_acc_class{i}": a for i, a in enumerate(v)})
            elif not isinstance(v, (list, dict)):
                flat[k] = v
        epochs.append(flat)
    run_rows = []
    for link in store.study_runs(study, version):
        r = runs[link.run_id]
        row = {"study": study, "arm": link.arm, "label": link.label, "seed": link.seed, "run_id": r.id,
               "status": r.status, "status_detail": r.status_detail, "epochs_done": link.epochs_done,
               "params": r.params, "flops": r.flops, "batch_size_used": r.batch_size_used,
               "wall_time_s": r.wall_time_s, "data_source": r.data_source, "data_checksum": r.data_checksum}
        row.update({f"config.{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                    for k, v in flatten(r.config).items()})
        run_rows.append(row)
    return epochs, run_rows
