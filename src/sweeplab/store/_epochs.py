"""Epoch rows and the checkpoints committed with them."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sweeplab.errors import StoreError
from sweeplab.store.records import Checkpoint
from sweeplab.store._rows import (
    CHECKPOINT_KINDS,
    EpochConflictError,
    _EPOCH_COLUMNS,
    _check_epoch,
    _epoch_dict,
    _marks,
    _max_epoch,
    _now,
    _split_metrics,
    _wall_time,
)
from sweeplab.store._base import _Base
from sweeplab.store._steps import copy_steps, insert_steps, step_values


class _Epochs(_Base):
    """Epoch rows and the checkpoints committed with them."""

    # ------------------------------------------------------------------ epochs and checkpoints

    def commit_epoch(
        self,
        run_id: str,
        epoch: int,
        metrics: Mapping[str, Any],
        last_ckpt: bytes | None,
        best_ckpt: bytes | None = None,
        *,
        add_wall_time_s: float = 0.0,
        steps: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Append epoch ``epoch`` of a run and the checkpoints taken after it, atomically.

        Epochs are numbered from 1 and must come in order: committing an epoch that exists or
        skipping one raises ``EpochConflictError``. ``metrics`` keys named in
        ``EPOCH_METRIC_COLUMNS`` go to their columns (numbers or None); any other key goes to
        ``extra_json`` (anything JSON can hold, plus numpy/torch values). ``last_ckpt`` replaces
        the run's ``last`` checkpoint and ``best_ckpt`` (if given) its ``best`` one; both are the
        caller's serialised bytes (``torch.save`` to a buffer). ``add_wall_time_s`` is added to
        the run's wall time in the same transaction, so a killed worker loses at most one epoch.
        ``steps`` are the evaluations made during the epoch (``eval_every_steps``), each a mapping
        with its global ``step`` and ``STEP_METRIC_COLUMNS``; they are committed with the epoch
        or not at all, and must come after every step the run already has.
        """
        epoch = _check_epoch(epoch)
        columns, extra_json = _split_metrics(metrics)
        # Hash outside the transaction: other writers wait on us only for the actual writes.
        blobs = [
            (kind, bytes(data), hashlib.sha256(data).hexdigest())
            for kind, data in (("last", last_ckpt), ("best", best_ckpt))
            if data is not None
        ]
        wall = _wall_time(add_wall_time_s)
        now = _now()
        step_rows = step_values(run_id, epoch, steps, now)
        with self._writing() as conn:
            self._check_run(conn, run_id)
            _check_next_epoch(conn, run_id, epoch)
            conn.execute(
                f"INSERT INTO epochs ({', '.join(_EPOCH_COLUMNS)})"
                f" VALUES ({_marks(_EPOCH_COLUMNS)})",
                (run_id, epoch, *columns, extra_json, now),
            )
            insert_steps(conn, run_id, step_rows)
            for kind, data, digest in blobs:
                conn.execute(
                    "INSERT INTO checkpoints"
                    " (run_id, kind, epoch, data, size_bytes, sha256, saved_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(run_id, kind) DO UPDATE SET epoch = excluded.epoch,"
                    "   data = excluded.data, size_bytes = excluded.size_bytes,"
                    "   sha256 = excluded.sha256, saved_at = excluded.saved_at",
                    (run_id, kind, epoch, data, len(data), digest, now),
                )
            conn.execute(
                "UPDATE runs SET wall_time_s = wall_time_s + ?, heartbeat_at = ? WHERE id = ?",
                (wall, now, run_id),
            )

    def continue_run(self, run_id: str, source_id: str, *, drop_from_last: Iterable[str] = ()) -> int:
        """Make ``run_id`` (a recorded run with no epochs yet) the continuation of the completed
        run ``source_id``: copy its epoch rows, step rows and its ``last`` and ``best`` checkpoints and set
        ``continued_from``, in one transaction, so a crash leaves either all of it or none.

        ``drop_from_last`` names extra metrics not to copy with the source's final row (ones a
        run records only at its own last epoch). Returns the number of epochs copied; 0, with
        nothing changed, when the source is no longer a completed run with epochs (forgotten
        meanwhile). ``EpochConflictError`` when ``run_id`` already has epochs.
        """
        drop = set(drop_from_last)
        with self._writing() as conn:
            self._check_run(conn, run_id)
            if (done := _max_epoch(conn, run_id)) > 0:
                raise EpochConflictError(f"run {run_id}: cannot continue {source_id}, it already has epochs 1..{done}")
            source = self._get_run(conn, source_id)
            if source.status != "completed" or source.epochs_done == 0:
                return 0
            rows = conn.execute(
                f"SELECT {', '.join(_EPOCH_COLUMNS)} FROM epochs WHERE run_id = ? ORDER BY epoch", (source_id,)
            ).fetchall()
            values = [[run_id, *tuple(row)[1:]] for row in rows]
            extra_at = _EPOCH_COLUMNS.index("extra_json")
            if drop and values[-1][extra_at]:
                extra = {k: v for k, v in json.loads(values[-1][extra_at]).items() if k not in drop}
                values[-1][extra_at] = json.dumps(extra) if extra else None
            conn.executemany(
                f"INSERT INTO epochs ({', '.join(_EPOCH_COLUMNS)}) VALUES ({_marks(_EPOCH_COLUMNS)})", values
            )
            copy_steps(conn, run_id, source_id)
            conn.execute(
                "INSERT INTO checkpoints (run_id, kind, epoch, data, size_bytes, sha256, saved_at)"
                " SELECT ?, kind, epoch, data, size_bytes, sha256, saved_at FROM checkpoints WHERE run_id = ?",
                (run_id, source_id),
            )
            conn.execute("UPDATE runs SET continued_from = ?, heartbeat_at = ? WHERE id = ?",
                         (source_id, _now(), run_id))
            return len(values)

    def epochs(self, run_id: str, *, after: int = 0, extra: bool = True) -> list[dict[str, Any]]:
        """A run's epoch rows in order, as dicts: run_id, epoch, every metric column (None when
        not recorded), finished_at, and the extra metrics merged in.

        ``after``: only the rows of epochs after this one (a live view's cursor); the primary
        key's range scan reads those rows alone, however long the run already is. ``extra=False``
        leaves the extra metrics out (per-class accuracies, confusion matrices): decoding them is
        most of the cost of reading a long run, and curves need only the metric columns."""
        columns = _EPOCH_COLUMNS if extra else tuple(c for c in _EPOCH_COLUMNS if c != "extra_json")
        with self._reading() as conn:
            self._check_run(conn, run_id)
            rows = conn.execute(
                f"SELECT {', '.join(columns)} FROM epochs WHERE run_id = ? AND epoch > ?"
                " ORDER BY epoch",
                (run_id, int(after)),
            ).fetchall()
        if not extra:
            return [dict(row) for row in rows]
        return [_epoch_dict(row) for row in rows]

    def last_epoch(self, run_id: str) -> int:
        """Highest committed epoch of a run, 0 if none (resume trains from this + 1)."""
        with self._reading() as conn:
            self._check_run(conn, run_id)
            return _max_epoch(conn, run_id)

    def load_checkpoint(self, run_id: str, kind: str = "last") -> Checkpoint | None:
        """The run's ``last`` or ``best`` checkpoint as ``(epoch, bytes)``, None if none saved.

        Raises ``StoreError`` if the stored bytes no longer match their checksum.
        """
        if kind not in CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint kind must be one of {CHECKPOINT_KINDS}, not {kind!r}")
        with self._reading() as conn:
            self._check_run(conn, run_id)
            row = conn.execute(
                "SELECT epoch, data, sha256 FROM checkpoints WHERE run_id = ? AND kind = ?",
                (run_id, kind),
            ).fetchone()
        if row is None:
            return None
        data = bytes(row["data"])
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise StoreError(f"run {run_id}: the {kind} checkpoint is corrupt (checksum mismatch)")
        return Checkpoint(row["epoch"], data)


def _check_next_epoch(conn: sqlite3.Connection, run_id: str, epoch: int) -> None:
    """Epochs come 1, 2, 3...: ``EpochConflictError`` for one that exists or one that skips ahead."""
    done = _max_epoch(conn, run_id)
    if epoch <= done:
        raise EpochConflictError(
            f"run {run_id}: epoch {epoch} is already recorded (epochs 1..{done} exist); "
            "is another process training this run?"
        )
    if epoch != done + 1:
        raise EpochConflictError(f"run {run_id}: cannot record epoch {epoch}, the next epoch is {done + 1}")
