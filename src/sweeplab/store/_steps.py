"""Step rows: the evaluations a run with ``eval_every_steps`` makes inside its epochs.

They are written only by ``commit_epoch``, in the epoch's own transaction (see ``_epochs.py``):
an epoch's step rows exist exactly when its epoch row does, so a run killed mid-epoch leaves
none of that epoch's, and its resume, which redoes the epoch from the checkpoint, writes them
once. Read them with ``Store.steps`` (one run) or through ``store.export.study_results``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sweeplab.store._base import _Base
from sweeplab.store._rows import EpochConflictError, _as_number, _marks
from sweeplab.store.records import STEP_METRIC_COLUMNS

_STEP_COLUMNS = ("run_id", "step", "epoch", *STEP_METRIC_COLUMNS, "finished_at")


def step_values(run_id: str, epoch: int, steps: Sequence[Mapping[str, Any]], now: str) -> list[tuple[Any, ...]]:
    """The rows to insert for an epoch's step evaluations, after checking their shape: each a
    mapping with an int ``step`` >= 1, strictly increasing, and only known metrics (numbers or
    None; NaN is stored as NULL, as SQLite does anyway)."""
    out: list[tuple[Any, ...]] = []
    previous = 0
    for row in steps:
        if not isinstance(row, Mapping):
            raise TypeError(f"a step row must be a mapping, not {type(row).__name__}")
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step <= previous:
            raise ValueError(f"step rows need int steps >= 1 in increasing order, got {step!r} after {previous}")
        unknown = sorted(set(row) - {"step", "epoch", *STEP_METRIC_COLUMNS})
        if unknown:
            raise ValueError(f"unknown step metric(s) {', '.join(unknown)}; known: {', '.join(STEP_METRIC_COLUMNS)}")
        if row.get("epoch", epoch) != epoch:
            raise ValueError(f"step {step} names epoch {row['epoch']}, but is committed with epoch {epoch}")
        values = [_as_number(key, row.get(key)) for key in STEP_METRIC_COLUMNS]
        values = [None if v is not None and math.isnan(v) else v for v in values]
        out.append((run_id, step, epoch, *values, now))
        previous = step
    return out


def insert_steps(conn: sqlite3.Connection, run_id: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert an epoch's step rows (from :func:`step_values`) inside the caller's transaction;
    ``EpochConflictError`` when one is not after every step the run already has."""
    if not rows:
        return
    done = max_step(conn, run_id)
    if rows[0][1] <= done:
        raise EpochConflictError(f"run {run_id}: step {rows[0][1]} is not after its last recorded step {done}")
    conn.executemany(f"INSERT INTO steps ({', '.join(_STEP_COLUMNS)}) VALUES ({_marks(_STEP_COLUMNS)})", rows)


def max_step(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT MAX(step) FROM steps WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] or 0


def copy_steps(conn: sqlite3.Connection, run_id: str, source_id: str) -> None:
    """Give ``run_id`` the step rows of ``source_id`` (a continuation: see ``continue_run``)."""
    rest = ", ".join(_STEP_COLUMNS[1:])
    conn.execute(f"INSERT INTO steps (run_id, {rest}) SELECT ?, {rest} FROM steps WHERE run_id = ?",
                 (run_id, source_id))


class _Steps(_Base):
    """Reading step rows."""

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """A run's step rows in order, as dicts: run_id, step, epoch, the step metrics (None
        when not measured, e.g. val without a validation split) and finished_at. Empty for a run
        without ``eval_every_steps``."""
        with self._reading() as conn:
            self._check_run(conn, run_id)
            rows = conn.execute(
                f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY step", (run_id,)
            ).fetchall()
        return [{c: row[c] for c in _STEP_COLUMNS} for row in rows]
