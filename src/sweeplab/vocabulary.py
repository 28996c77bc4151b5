"""The words every layer shares, defined once: run statuses and which are final, the metric
names and which way is better, the baseline arm's name, and how a status detail is written.

A leaf like ``errors.py``: it imports nothing from sweeplab, so config, store, train, study and
report all use it without importing each other.
"""

from __future__ import annotations

import json
from typing import Any

#: Every status a run can have, in the order a report should list them.
RUN_STATUSES: tuple[str, ...] = (
    "pending",  # known to the store, never started
    "running",  # claimed by a worker (see ``RunRecord.worker``)
    "completed",  # all planned epochs committed
    "diverged",  # stopped on a non-finite / exploding loss; detail says epoch and reason
    "oom",  # out of memory even at the smallest batch size tried; detail says which
    "failed",  # any other exception; detail holds the error text
    "interrupted",  # stopped by the user or a dead worker; resumable from its last checkpoint
)

#: Statuses after which a run makes no further progress on its own; entering one stamps
#: ``finished_at``.
STOPPED_STATUSES: frozenset[str] = frozenset(RUN_STATUSES) - {"pending", "running"}

#: Statuses after which a run is never trained again (a rerun skips it).
FINAL_STATUSES: tuple[str, ...] = ("completed", "diverged")

#: The arm name of a study's baseline (the ``[baseline]`` table when it is trained as an arm).
BASELINE_ARM = "baseline"

#: Metrics a study can rank by and a run can keep its best checkpoint by.
METRICS: tuple[str, ...] = ("test_acc", "val_acc", "test_loss", "val_loss", "train_acc", "train_loss")


def lower_is_better(metric: str) -> bool:
    """Losses are better low, accuracies high (any metric whose name ends in ``loss``)."""
    return metric.endswith("loss")


def diverged_detail(epoch: int, step: int, reason: str) -> str:
    """The ``status_detail`` of a diverged run (JSON: epoch, step, reason)."""
    return json.dumps({"epoch": epoch, "step": step, "reason": reason})


def oom_detail(batch_size: Any, error: str) -> str:
    """The ``status_detail`` of a run out of memory (JSON: the batch size that failed, the error)."""
    return json.dumps({"batch_size": batch_size, "error": error.splitlines()[0][:300] if error else ""})


def early_stop_detail(epoch: int, best_epoch: int, metric: str, patience: int, min_delta: float = 0.0) -> str:
    """The ``status_detail`` of a run that early stopping ended (it is ``completed``): JSON whose
    ``reason`` reads ``stopped early at epoch 9, best at 4 (val_acc, patience 5)``; "best" is the
    last epoch that improved by more than ``min_delta``, named when it is not 0."""
    rule = f"{metric}, patience {patience}" + (f", min_delta {min_delta:g}" if min_delta else "")
    return json.dumps({"stopped_early": epoch, "best_epoch": best_epoch, "metric": metric, "patience": patience,
                       "min_delta": min_delta, "reason": f"stopped early at epoch {epoch}, best at {best_epoch} ({rule})"})


def parse_detail(detail: str | None) -> dict[str, Any]:
    """A ``status_detail`` read back: the JSON of diverged and oom runs, else ``{"text": ...}``."""
    if not detail:
        return {}
    try:
        parsed = json.loads(detail)
    except ValueError:
        return {"text": detail}
    return parsed if isinstance(parsed, dict) else {"text": detail}


def detail_line(detail: str | None) -> str:
    """A status detail as one short line: the reason of a divergence, the batch size of an OOM,
    the first line of an error."""
    info = parse_detail(detail)
    if "reason" in info:
        return str(info["reason"])[:200]
    if "batch_size" in info:
        return f"out of memory at batch size {info['batch_size']}"
    return str(info.get("text", "")).splitlines()[0][:200] if info.get("text") else ""
