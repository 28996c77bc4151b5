"""The run store: one SQLite file holding runs, their epoch rows and checkpoints, and studies.

This is the only code in sweeplab that speaks SQL. Several worker processes write to the same
file while a driver and a dashboard read it, so:

- the file is in WAL mode: readers never block writers and never see a half-done transaction;
- every write is one short ``BEGIN IMMEDIATE`` transaction (the write lock is taken up front, so
  two writers never deadlock upgrading a read lock), waited for through ``busy_timeout`` and
  retried on the busy errors SQLite returns without waiting;
- an epoch's row and the checkpoint taken after it are committed in the same transaction, so a
  worker killed at any instant leaves either both or neither;
- epoch rows are append-only and numbered 1, 2, 3... without gaps; the primary key
  ``(run_id, epoch)`` rejects a second row for the same epoch.

A ``Store`` is safe to share between threads (calls are serialised) but not across processes:
open one per process. Nothing here deletes epochs or checkpoints implicitly: a run's ``last``
and ``best`` checkpoints are replaced (that is what those kinds mean), and ``forget_run`` wipes
a run's results only when called for it by name.

One class, several rooms: ``_base.py`` (opening, migrating, transactions, retries), ``_runs.py``,
``_epochs.py`` (epoch rows and checkpoints), ``_steps.py`` (evaluations every N steps),
``_studies.py``, ``_lr_finds.py`` (LR range tests), ``_rows.py`` (columns and codecs).
"""

from __future__ import annotations

from sweeplab.store._base import _Base
from sweeplab.store._epochs import _Epochs
from sweeplab.store._lr_finds import _LrFinds
from sweeplab.store._rows import CHECKPOINT_KINDS, DEFAULT_DB_PATH, EpochConflictError, default_worker_id
from sweeplab.store._runs import _Runs
from sweeplab.store._steps import _Steps
from sweeplab.store._studies import _Studies

__all__ = ["CHECKPOINT_KINDS", "DEFAULT_DB_PATH", "EpochConflictError", "Store", "default_worker_id"]


class Store(_LrFinds, _Studies, _Epochs, _Steps, _Runs, _Base):
    """A sweeplab run store in one SQLite file.

    ``Store(path)`` opens (creating the file, its folder and the schema if needed) for reading and
    writing; ``Store(path, readonly=True)`` opens an existing store for reporters and dashboards
    and never writes. ``timeout_s`` is how long a write waits for another process's write lock
    before giving up with ``StoreError``. Use as a context manager or call ``close()``.
    """
