"""Run store: runs, epoch rows, checkpoints and studies in one SQLite file.

The only part of sweeplab that speaks SQL. Trainers commit each epoch's metrics together with the
checkpoint taken after it; the executor claims and finishes runs; reports and the dashboard read
with ``Store(path, readonly=True)``. See ``store.py`` for the concurrency and crash guarantees.
"""

from sweeplab.store._schema import SCHEMA_VERSION
from sweeplab.store.records import (
    EPOCH_METRIC_COLUMNS,
    FINAL_STATUSES,
    RUN_STATUSES,
    STEP_METRIC_COLUMNS,
    STOPPED_STATUSES,
    Arm,
    Checkpoint,
    JsonLike,
    Link,
    LrFindRecord,
    RunRecord,
    StudyRecord,
    StudyRunRecord,
    StudyVersion,
)
from sweeplab.store.store import (
    CHECKPOINT_KINDS,
    DEFAULT_DB_PATH,
    EpochConflictError,
    Store,
    default_worker_id,
)

__all__ = [
    "CHECKPOINT_KINDS",
    "FINAL_STATUSES",
    "DEFAULT_DB_PATH",
    "EPOCH_METRIC_COLUMNS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "STEP_METRIC_COLUMNS",
    "STOPPED_STATUSES",
    "Arm",
    "Checkpoint",
    "EpochConflictError",
    "JsonLike",
    "Link",
    "LrFindRecord",
    "RunRecord",
    "Store",
    "StudyRecord",
    "StudyRunRecord",
    "StudyVersion",
    "default_worker_id",
]
