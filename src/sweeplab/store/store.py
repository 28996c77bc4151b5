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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sweeplab.errors import StoreError
from sweeplab.store import _open as _open_checks
from sweeplab.store import _schema, versions
from sweeplab.store.records import (
    EPOCH_METRIC_COLUMNS,
    RUN_STATUSES,
    STOPPED_STATUSES,
    Arm,
    Checkpoint,
    JsonLike,
    Link,
    RunRecord,
    StudyRecord,
    StudyRunRecord,
    StudyVersion,
)

#: Where the CLI keeps the store unless told otherwise (relative to the working directory).
DEFAULT_DB_PATH = Path("runs") / "sweeplab.db"

CHECKPOINT_KINDS = ("last", "best")

# Columns a caller may set through update_run / set_status(**fields). Identity (id, config_json,
# seed), status and timestamps have their own methods so they cannot be clobbered by accident.
_UPDATABLE_RUN_FIELDS = frozenset(
    {
        "label",
        "data_source",
        "data_checksum",
        "env_json",
        "device",
        "params",
        "flops",
        "batch_size_used",
        "epochs_planned",
        "worker",
        "wall_time_s",
    }
)
_RUN_COLUMNS = tuple(f.name for f in fields(RunRecord) if f.name != "epochs_done")
_RUN_SELECT = (
    "SELECT "
    + ", ".join(f"r.{c}" for c in _RUN_COLUMNS)
    + ", COALESCE((SELECT MAX(e.epoch) FROM epochs e WHERE e.run_id = r.id), 0) AS epochs_done"
    + " FROM runs r"
)
_EPOCH_COLUMNS = ("run_id", "epoch", *EPOCH_METRIC_COLUMNS, "extra_json", "finished_at")
# Keys the store itself puts in epoch dicts (all_epochs adds the link's and run's fields).
_RESERVED_METRIC_KEYS = frozenset(
    {"run_id", "epoch", "extra_json", "finished_at", "study", "arm", "label", "seed", "status"}
)

# Connections inherited by a forked child. Finalising one there could make SQLite believe it is
# the last connection and checkpoint or delete the parent's WAL, so they are kept alive instead.
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []

_T = TypeVar("_T")


class EpochConflictError(StoreError):
    """An epoch was committed twice or out of order: usually two processes training one run."""


def default_worker_id() -> str:
    """``host:pid`` of this process: the ``worker`` recorded on the runs it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _same_run_part(config_json: str) -> Any:
    """A config as compared by ``upsert_run``: the user's code files by name only. A run's id
    hashes the part of each file it uses, so a text edited elsewhere (another network in the
    same file) is still the same run; the store keeps the text the run was trained with."""
    config = json.loads(config_json)
    if isinstance(config, dict) and isinstance(config.get("code"), dict):
        config["code"] = sorted(config["code"])
    return config


class Store:
    """A sweeplab run store in one SQLite file.

    ``Store(path)`` opens (creating the file, its folder and the schema if needed) for reading and
    writing; ``Store(path, readonly=True)`` opens an existing store for reporters and dashboards
    and never writes. ``timeout_s`` is how long a write waits for another process's write lock
    before giving up with ``StoreError``. Use as a context manager or call ``close()``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_DB_PATH,
        *,
        readonly: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.timeout_s = float(timeout_s)
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            if os.getpid() != self._pid:
                _INHERITED_CONNECTIONS.append(conn)
                return
            conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "readwrite"
        return f"Store({str(self.path)!r}, {mode})"

    # ------------------------------------------------------------------ runs

    def upsert_run(
        self,
        run_id: str,
        config_json: JsonLike,
        seed: int,
        *,
        label: str | None = None,
        epochs_planned: int | None = None,
    ) -> RunRecord:
        """Record a run as ``pending`` unless it exists; return its current row.

        An existing run keeps its status, epochs and metadata; only a missing ``label`` or
        ``epochs_planned`` is filled in. Raises ``StoreError`` if the id exists with a different
        config or seed, since the id is meant to be a hash of both.
        """
        _check_run_id(run_id)
        config = _to_json(config_json, "config_json")
        now = _now()
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO runs"
                " (id, config_json, seed, label, epochs_planned, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?)"
                " ON CONFLICT(id) DO UPDATE SET"
                "   label = COALESCE(runs.label, excluded.label),"
                "   epochs_planned = COALESCE(runs.epochs_planned, excluded.epochs_planned)",
                (run_id, config, int(seed), label, epochs_planned, now),
            )
            run = self._get_run(conn, run_id)
            if run.seed != int(seed) or _same_run_part(run.config_json) != _same_run_part(config):
                raise StoreError(
                    f"run {run_id} already exists with a different config or seed; "
                    "a run id must be the hash of its resolved config and seed"
                )
            return run

    def get_run(self, run_id: str) -> RunRecord:
        """The run with exactly this id; ``StoreError`` if there is none."""
        with self._reading() as conn:
            return self._get_run(conn, run_id)

    def find_run(self, prefix: str) -> RunRecord:
        """Resolve a run id or a unique prefix of one (as typed on the command line).

        Raises ``StoreError`` when nothing matches or the prefix is ambiguous.
        """
        prefix = prefix.strip()
        if not prefix:
            raise StoreError("empty run id")
        with self._reading() as conn:
            rows = conn.execute(
                _RUN_SELECT + " WHERE substr(r.id, 1, ?) = ? ORDER BY r.id LIMIT 6",
                (len(prefix), prefix),
            ).fetchall()
        runs = [_run_record(row) for row in rows]
        exact = [run for run in runs if run.id == prefix]
        if exact:
            return exact[0]
        if not runs:
            raise StoreError(f"no run id starts with {prefix!r}")
        if len(runs) > 1:
            shown = ", ".join(run.id[: len(prefix) + 4] + "..." for run in runs[:5])
            more = " and more" if len(runs) > 5 else ""
            raise StoreError(
                f"run id prefix {prefix!r} is ambiguous: {shown}{more}; give more characters"
            )
        return runs[0]

    def list_runs(
        self,
        *,
        study: str | None = None,
        status: str | Iterable[str] | None = None,
        version: int | None = None,
    ) -> list[RunRecord]:
        """Runs, optionally only those of ``study`` (its default version unless ``version``)
        and/or with the given status(es).

        Ordered by first appearance in the study when one is given, else by creation time. A run
        shared by several arms of the study appears once.
        """
        where, params, order = [], [], "r.created_at, r.id"
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                _check_status(s)
            where.append(f"r.status IN ({_marks(statuses)})")
            params.extend(statuses)
        with self._reading() as conn:
            if study is not None:
                v = versions.resolve(conn, study, version)
                where.append(
                    "r.id IN (SELECT run_id FROM study_runs WHERE study = ? AND version = ?)"
                )
                params.extend((study, v))
                order = (
                    "(SELECT MIN(l.position) FROM study_runs l"
                    " WHERE l.study = ? AND l.version = ? AND l.run_id = r.id)"
                )
                params.extend((study, v))
            sql = _RUN_SELECT + (" WHERE " + " AND ".join(where) if where else "")
            rows = conn.execute(sql + f" ORDER BY {order}", params).fetchall()
        return [_run_record(row) for row in rows]

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        """Set metadata columns of a run and return the new row.

        Allowed fields: label, data_source, data_checksum, env_json (str or mapping), device,
        params, flops, batch_size_used, epochs_planned, worker, wall_time_s (absolute; prefer
        ``add_wall_time_s`` of ``commit_epoch``/``set_status``, which survives a killed worker).
        Status changes go through ``set_status``/``claim_run``.
        """
        if not fields:
            raise TypeError("update_run() needs at least one field to set")
        assignments = _run_field_values(fields)
        with self._writing() as conn:
            self._update_run_row(conn, run_id, assignments)
            return self._get_run(conn, run_id)

    def set_status(
        self,
        run_id: str,
        status: str,
        detail: str | None = None,
        *,
        add_wall_time_s: float = 0.0,
        owner: str | None = None,
        **fields: Any,
    ) -> RunRecord:
        """Set a run's status and detail (replacing the old detail) and return the new row.

        With ``owner`` (a worker id, as given to ``claim_run``) the change applies only while that
        worker holds the run (``running`` with that ``worker``); otherwise nothing changes and the
        current row is returned, so a process never rewrites a run another one finished or holds.

        ``detail`` is for humans: the divergence epoch and reason, the batch size that ran out of
        memory, the error text. Entering ``running`` stamps ``started_at`` (first start only) and
        ``worker`` (this process unless given); entering a stopped status stamps ``finished_at``.
        ``add_wall_time_s`` is added to the run's accumulated wall time; ``fields`` are as for
        ``update_run``. This is an explicit override and does not check the previous status; use
        ``claim_run`` to start a run that another process might also want.
        """
        _check_status(status)
        now = _now()
        assignments: dict[str, Any] = {"status": status, "status_detail": detail}
        assignments.update(_run_field_values(fields))
        expressions: dict[str, tuple[str, tuple[Any, ...]]] = {"heartbeat_at": ("?", (now,))}
        if add_wall_time_s:
            if "wall_time_s" in assignments:
                raise ValueError("give wall_time_s or add_wall_time_s, not both")
            expressions["wall_time_s"] = ("wall_time_s + ?", (_wall_time(add_wall_time_s),))
        if status == "running":
            assignments.setdefault("worker", default_worker_id())
            assignments["finished_at"] = None
            expressions["started_at"] = ("COALESCE(started_at, ?)", (now,))
        elif status in STOPPED_STATUSES:
            assignments["finished_at"] = now
        with self._writing() as conn:
            if owner is not None:
                current = self._get_run(conn, run_id)
                if current.status != "running" or current.worker != owner:
                    return current
            self._update_run_row(conn, run_id, assignments, expressions)
            return self._get_run(conn, run_id)

    def claim_run(
        self,
        run_id: str,
        *,
        worker: str | None = None,
        from_statuses: Iterable[str] = ("pending", "interrupted"),
    ) -> bool:
        """Atomically move a run to ``running`` if its status is one of ``from_statuses``.

        Returns False (changing nothing) when the run is in any other status, e.g. already
        claimed by another worker or completed. Claim in the process that trains the run: its
        ``worker`` id (default ``default_worker_id()``) is what ``reset_stale_running`` checks.
        """
        allowed = list(from_statuses)
        for s in allowed:
            _check_status(s)
        if "running" in allowed:
            raise ValueError("claim_run cannot take a run that is already running")
        now = _now()
        with self._writing() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = 'running', status_detail = NULL, worker = ?,"
                " started_at = COALESCE(started_at, ?), finished_at = NULL, heartbeat_at = ?"
                f" WHERE id = ? AND status IN ({_marks(allowed)})",
                (worker or default_worker_id(), now, now, run_id, *allowed),
            )
            if cursor.rowcount == 0:
                self._check_run(conn, run_id)
            return cursor.rowcount == 1

    def heartbeat(self, run_id: str) -> None:
        """Record that the worker training ``run_id`` is alive (epoch commits do this too)."""
        with self._writing() as conn:
            self._update_run_row(conn, run_id, {"heartbeat_at": _now()})

    def mark_interrupted(
        self, run_ids: Iterable[str], detail: str | None = None, *, workers: Iterable[str] | None = None
    ) -> list[str]:
        """Mark those of ``run_ids`` that are ``running`` as ``interrupted``; return their ids.

        For a driver stopping its own workers (Ctrl-C): finished runs are left untouched, and with
        ``workers`` (worker ids) so are runs held by any other worker, e.g. another driver's.
        """
        ids = list(dict.fromkeys(run_ids))
        now = _now()
        changed = []
        owners = None if workers is None else list(workers)
        where = "" if owners is None else f" AND worker IN ({_marks(owners)})"
        with self._writing() as conn:
            for run_id in ids:
                cursor = conn.execute(
                    "UPDATE runs SET status = 'interrupted', status_detail = ?, finished_at = ?"
                    " WHERE id = ? AND status = 'running'" + where,
                    (detail, now, run_id, *(owners or [])),
                )
                if cursor.rowcount:
                    changed.append(run_id)
        return changed

    def reset_stale_running(self, *, stale_after_s: float | None = None) -> list[str]:
        """Mark ``running`` runs whose worker is gone as ``interrupted``; return their ids.

        A run is stale when its worker was a process on this host that no longer exists, or, if
        ``stale_after_s`` is given, when its last heartbeat is older than that (the only test
        possible for workers on other hosts). Runs held by live processes are left alone, so a
        driver may call this at start even while another driver works on the same store.
        """
        host = socket.gethostname()
        now = datetime.now(timezone.utc)
        stale: list[tuple[str, str]] = []
        with self._writing() as conn:
            rows = conn.execute(
                "SELECT id, worker, heartbeat_at FROM runs WHERE status = 'running'"
            ).fetchall()
            for row in rows:
                reason = _staleness(row["worker"], row["heartbeat_at"], host, now, stale_after_s)
                if reason is not None:
                    stale.append((row["id"], reason))
            for run_id, reason in stale:
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', status_detail = ?, finished_at = ?"
                    " WHERE id = ?",
                    (reason, _now(), run_id),
                )
        return [run_id for run_id, _ in stale]

    def forget_run(self, run_id: str) -> bool:
        """Delete a run's epochs and checkpoints and reset it to ``pending`` (``--fresh``).

        The only method that deletes training results, and only when asked by name. The run row
        (id, config, seed, label) and its study links stay, so studies still find it. Returns
        False if there is no such run. Refuses a run that a live worker is training.
        """
        host = socket.gethostname()
        with self._writing() as conn:
            row = conn.execute(
                "SELECT status, worker, heartbeat_at FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                return False
            now = datetime.now(timezone.utc)
            stale = _staleness(row["worker"], row["heartbeat_at"], host, now, None)
            if row["status"] == "running" and stale is None:
                raise StoreError(
                    f"run {run_id} is being trained by {row['worker'] or 'another process'}; "
                    "stop it before retraining from scratch"
                )
            conn.execute("DELETE FROM checkpoints WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            conn.execute(
                "UPDATE runs SET status = 'pending', status_detail = NULL, started_at = NULL,"
                " finished_at = NULL, wall_time_s = 0, worker = NULL, heartbeat_at = NULL"
                " WHERE id = ?",
                (run_id,),
            )
            return True

    def counts_by_status(
        self, study: str | None = None, *, version: int | None = None
    ) -> dict[str, int]:
        """Number of runs in each status (every status present, zeros included).

        With ``study``, counts distinct runs of that study's default version (or ``version``);
        a run shared by two arms counts once.
        """
        with self._reading() as conn:
            if study is None:
                rows = conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")
            else:
                v = versions.resolve(conn, study, version)
                rows = conn.execute(
                    "SELECT status, COUNT(*) FROM runs WHERE id IN (SELECT run_id FROM"
                    " study_runs WHERE study = ? AND version = ?) GROUP BY status",
                    (study, v),
                )
            counts = dict.fromkeys(RUN_STATUSES, 0)
            counts.update({status: n for status, n in rows.fetchall()})
            return counts

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
    ) -> None:
        """Append epoch ``epoch`` of a run and the checkpoints taken after it, atomically.

        Epochs are numbered from 1 and must come in order: committing an epoch that exists or
        skipping one raises ``EpochConflictError``. ``metrics`` keys named in
        ``EPOCH_METRIC_COLUMNS`` go to their columns (numbers or None); any other key goes to
        ``extra_json`` (anything JSON can hold, plus numpy/torch values). ``last_ckpt`` replaces
        the run's ``last`` checkpoint and ``best_ckpt`` (if given) its ``best`` one; both are the
        caller's serialised bytes (``torch.save`` to a buffer). ``add_wall_time_s`` is added to
        the run's wall time in the same transaction, so a killed worker loses at most one epoch.
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
        with self._writing() as conn:
            self._check_run(conn, run_id)
            done = _max_epoch(conn, run_id)
            if epoch <= done:
                raise EpochConflictError(
                    f"run {run_id}: epoch {epoch} is already recorded (epochs 1..{done} exist); "
                    "is another process training this run?"
                )
            if epoch != done + 1:
                raise EpochConflictError(
                    f"run {run_id}: cannot record epoch {epoch}, the next epoch is {done + 1}"
                )
            conn.execute(
                f"INSERT INTO epochs ({', '.join(_EPOCH_COLUMNS)})"
                f" VALUES ({_marks(_EPOCH_COLUMNS)})",
                (run_id, epoch, *columns, extra_json, now),
            )
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

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        """A run's epoch rows in order, as dicts: run_id, epoch, every metric column (None when
        not recorded), finished_at, and the extra metrics merged in."""
        with self._reading() as conn:
            self._check_run(conn, run_id)
            rows = conn.execute(
                f"SELECT {', '.join(_EPOCH_COLUMNS)} FROM epochs WHERE run_id = ? ORDER BY epoch",
                (run_id,),
            ).fetchall()
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

    # ------------------------------------------------------------------ studies

    def save_study(
        self,
        name: str,
        *,
        spec_json: JsonLike,
        arms: Sequence[Arm | str],
        links: Sequence[Link],
        description: str = "",
        metric: str | None = None,
        variant: bool = False,
    ) -> StudyRecord:
        """Create or update a study: its spec, its arms (in order) and its run links (in order).

        A spec not saved before under this name becomes a new version of the study; earlier
        versions keep their spec, arms and links (see ``versions.py``). ``variant``: this spec
        was made with command-line overrides, so it does not become the version shown by
        default. Saving a known spec again is idempotent. Runs and their epochs are never
        touched. Every linked run must exist already (``upsert_run`` first); two arms may link
        the same run. Returns the saved version's record (``.version``, ``.versions``).
        """
        if not name:
            raise ValueError("a study needs a name")
        spec = _to_json(spec_json, "spec_json")
        arm_list = [a if isinstance(a, Arm) else Arm(a) for a in arms]
        arm_names = [a.name for a in arm_list]
        if len(set(arm_names)) != len(arm_names):
            raise ValueError(f"study {name!r}: duplicate arm names in {arm_names}")
        arm_rows = [
            (a.name, i, _to_json(a.override_json, f"arm {a.name!r} override_json"))
            for i, a in enumerate(arm_list)
        ]
        seen: set[tuple[str, str]] = set()
        for link in links:
            if link.arm not in arm_names:
                raise ValueError(f"study {name!r}: link to unknown arm {link.arm!r}")
            if (link.arm, link.run_id) in seen:
                raise ValueError(
                    f"study {name!r}: run {link.run_id} linked twice to arm {link.arm!r}"
                )
            seen.add((link.arm, link.run_id))
        now = _now()
        with self._writing() as conn:
            missing = sorted(
                {
                    link.run_id
                    for link in links
                    if conn.execute("SELECT 1 FROM runs WHERE id = ?", (link.run_id,)).fetchone()
                    is None
                }
            )
            if missing:
                raise StoreError(
                    f"study {name!r} links runs that are not in the store ({', '.join(missing[:3])}"
                    f"{'...' if len(missing) > 3 else ''}); upsert_run them first"
                )
            version, _ = versions.save_version(
                conn,
                name,
                spec=spec,
                description=description,
                metric=metric,
                variant=variant,
                arm_rows=arm_rows,
                link_rows=[(link.arm, int(link.seed), link.run_id, link.label) for link in links],
                now=now,
            )
            return self._get_study(conn, name, version)

    def get_study(self, name: str, version: int | None = None) -> StudyRecord:
        """The study with this name, its default version (or ``version``) and that version's
        arms; ``StoreError`` if there is no such study or version."""
        with self._reading() as conn:
            return self._get_study(conn, name, version)

    def study_versions(self, name: str) -> list[StudyVersion]:
        """Every version of the study, oldest first (``StoreError`` if there is no study)."""
        with self._reading() as conn:
            return versions.list_versions(conn, name)

    def list_studies(self) -> list[StudyRecord]:
        """Every study, oldest first."""
        with self._reading() as conn:
            names = conn.execute("SELECT name FROM studies ORDER BY created_at, name").fetchall()
            return [self._get_study(conn, row["name"]) for row in names]

    def study_runs(self, study: str, version: int | None = None) -> list[StudyRunRecord]:
        """The (arm, run) links of the study's default version (or ``version``) in order,
        joined with each run's status and progress."""
        with self._reading() as conn:
            v = versions.resolve(conn, study, version)
            rows = conn.execute(
                "SELECT l.study, l.arm, a.position AS arm_position, l.position, l.label, l.seed,"
                "  l.run_id, r.status, r.status_detail, r.epochs_planned, r.wall_time_s,"
                "  COALESCE((SELECT MAX(e.epoch) FROM epochs e WHERE e.run_id = l.run_id), 0)"
                "    AS epochs_done"
                " FROM study_runs l"
                " JOIN arms a ON a.study = l.study AND a.version = l.version AND a.name = l.arm"
                " JOIN runs r ON r.id = l.run_id"
                " WHERE l.study = ? AND l.version = ? ORDER BY l.position",
                (study, v),
            ).fetchall()
        return [StudyRunRecord(**dict(row)) for row in rows]

    def all_epochs(self, study: str, version: int | None = None) -> list[dict[str, Any]]:
        """Every epoch row of the runs of the study's default version (or ``version``) with the
        link's arm, label and seed and the run's status, ordered by link then epoch (for exports
        and reports). A run shared by two arms contributes its rows to both."""
        with self._reading() as conn:
            v = versions.resolve(conn, study, version)
            rows = conn.execute(
                "SELECT l.study, l.arm, l.label, l.seed, r.status,"
                f" {', '.join('e.' + c for c in _EPOCH_COLUMNS)}"
                " FROM study_runs l"
                " JOIN runs r ON r.id = l.run_id"
                " JOIN epochs e ON e.run_id = l.run_id"
                " WHERE l.study = ? AND l.version = ? ORDER BY l.position, e.epoch",
                (study, v),
            ).fetchall()
        out = []
        for row in rows:
            record = {k: row[k] for k in ("study", "arm", "label", "seed", "status")}
            record.update(_epoch_dict(row))
            out.append(record)
        return out

    # ------------------------------------------------------------------ internals

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if self.readonly:
            if not path.is_file():
                raise StoreError("no run store at this path (nothing has been run yet?)", str(path))
            # mode=ro: a reporter or dashboard must never create, migrate or lock out the file
            # (immutable where the folder is read-only: see _open.py).
            _open_checks.check_identity(path)
            target, uri = _open_checks.readonly_uri(path), True
        else:
            if path.is_dir():
                raise StoreError("is a folder; give the path of the run store file", str(path))
            # Before anything that writes (the WAL switch in _configure): refuse a file that is
            # not ours while it is still untouched.
            _open_checks.check_identity(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(
                    f"cannot create the run store's folder ({err.strerror})", str(path)
                ) from None
            target, uri = str(path), False
        try:
            conn = sqlite3.connect(
                target,
                uri=uri,
                timeout=self.timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # calls are serialised by self._lock
            )
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the run store ({err})", str(path)) from None
        conn.row_factory = sqlite3.Row
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        where = str(self.path)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            # Both header fields in one read transaction: another process creating the store
            # commits them together, and reading them apart could see one before and one after.
            with self._transaction(conn, write=False):
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"not a SQLite database ({err}); give the path of a sweeplab run store", where
            ) from None
        if app_id != _schema.APPLICATION_ID and (app_id != 0 or version != 0):
            raise StoreError(
                "is a SQLite database of another program, not a sweeplab run store", where
            )
        newest = _schema.current_version()
        if version > newest:
            raise StoreError(
                f"the run store was written by a newer sweeplab (schema {version} > {newest}); "
                "upgrade sweeplab",
                where,
            )
        if self.readonly:
            if version == 0:
                raise StoreError("is not an initialised sweeplab run store", where)
            if version < newest:
                raise StoreError(
                    f"the run store uses an older schema ({version} < {newest}); a sweeplab "
                    "command that writes to it (e.g. training a run) upgrades it",
                    where,
                )
            conn.execute("PRAGMA foreign_keys = ON")
            return
        try:
            # WAL lets readers and one writer proceed together. synchronous=NORMAL keeps every
            # commit atomic across process crashes; a power cut may lose the last commits,
            # which resume recomputes.
            self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchall())
            conn.execute("PRAGMA synchronous = NORMAL")
            # Checkpoint blobs can swell the WAL; trim it back after each WAL checkpoint.
            conn.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024}")
            conn.execute("PRAGMA foreign_keys = ON")
            if version < newest:
                with self._transaction(conn, write=True):
                    self._migrate(conn)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the run store for writing ({err})", where) from None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # Re-read under the write lock: another process may have migrated since we looked.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        newest = _schema.current_version()
        if version >= newest:
            return
        if version == 0 and conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1"
        ).fetchone():
            raise StoreError(
                "is a SQLite database with tables of its own, not a sweeplab run store",
                str(self.path),
            )
        _schema.migrate(conn, version)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"{self!r} is closed")
        if os.getpid() != self._pid:
            raise RuntimeError(
                "this Store was opened in another process and crossed a fork; "
                "open a new Store in each process"
            )
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        # One read transaction per call: multi-query reads see a single consistent snapshot.
        with self._lock:
            conn = self._connection()
            with self._transaction(conn, write=False):
                yield conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self.readonly:
                raise StoreError("the run store was opened read-only", str(self.path))
            conn = self._connection()
            with self._transaction(conn, write=True):
                yield conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, *, write: bool) -> Iterator[None]:
        # IMMEDIATE takes the write lock before reading anything, so a writer never has to
        # upgrade a read snapshot that another writer has made stale (which fails at once,
        # without waiting for busy_timeout).
        self._retry(lambda: conn.execute("BEGIN IMMEDIATE" if write else "BEGIN"))
        try:
            yield
            self._retry(lambda: conn.execute("COMMIT"))
        except BaseException as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                message = _user_facing(err)
                if message:
                    raise StoreError(message, str(self.path)) from err
            raise

    def _retry(self, operation: Callable[[], _T]) -> _T:
        """Run ``operation``, retrying while SQLite says busy, for up to ``timeout_s``.

        ``busy_timeout`` already waits inside SQLite; this covers the busy results SQLite returns
        without calling the busy handler (WAL recovery, a concurrent switch to WAL mode).
        """
        deadline = time.monotonic() + self.timeout_s
        delay = 0.005
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as err:
                if not _is_busy(err):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"the run store stayed locked for {self.timeout_s:g} s: another process "
                        "holds a long write transaction",
                        str(self.path),
                    ) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    def _get_run(self, conn: sqlite3.Connection, run_id: str) -> RunRecord:
        row = conn.execute(_RUN_SELECT + " WHERE r.id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run with id {run_id!r}")
        return _run_record(row)

    def _check_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise StoreError(f"no run with id {run_id!r}")

    def _get_study(
        self, conn: sqlite3.Connection, name: str, version: int | None = None
    ) -> StudyRecord:
        row = conn.execute("SELECT * FROM studies WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"no study named {name!r} in the run store")
        v = versions.resolve(conn, name, version)
        info = versions.version_info(conn, name, v)
        arms = conn.execute(
            "SELECT name, override_json FROM arms WHERE study = ? AND version = ?"
            " ORDER BY position",
            (name, v),
        ).fetchall()
        return StudyRecord(
            name=row["name"],
            description=info["description"],
            spec_json=info["spec_json"],
            metric=info["metric"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            arms=tuple(Arm(a["name"], a["override_json"]) for a in arms),
            version=v,
            versions=info["versions"],
            variant=bool(info["variant"]),
        )

    def _update_run_row(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        values: Mapping[str, Any],
        expressions: Mapping[str, tuple[str, tuple[Any, ...]]] | None = None,
    ) -> None:
        # Column names come from whitelists in this module, never from callers' strings.
        sets = [f"{column} = ?" for column in values]
        params: list[Any] = list(values.values())
        for column, (expression, args) in (expressions or {}).items():
            sets.append(f"{column} = {expression}")
            params.extend(args)
        cursor = conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*params, run_id))
        if cursor.rowcount == 0:
            raise StoreError(f"no run with id {run_id!r}")


# ---------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _marks(items: Sequence[Any]) -> str:
    return ", ".join("?" * len(items))


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


def _user_facing(err: sqlite3.Error) -> str | None:
    """A one-line explanation for SQLite errors caused by the environment, not by our code."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is None:
        return None
    explanations = {
        sqlite3.SQLITE_FULL: "the disk holding the run store is full",
        sqlite3.SQLITE_READONLY: "the run store file or its folder is not writable",
        sqlite3.SQLITE_IOERR: "I/O error on the run store",
        sqlite3.SQLITE_CORRUPT: "the run store file is corrupt",
        sqlite3.SQLITE_NOTADB: "not a SQLite database",
    }
    text = explanations.get(code & 0xFF)
    return f"{text} ({err})" if text else None


def _check_run_id(run_id: str) -> None:
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValueError(f"a run id must be a non-empty string, not {run_id!r}")


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(
            f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}"
        )


def _check_epoch(epoch: int) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"epoch must be an int >= 1 (epochs are numbered from 1), not {epoch!r}")
    return epoch


def _wall_time(seconds: float) -> float:
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"wall time must be a finite number of seconds >= 0, not {seconds!r}")
    return seconds


def _json_default(obj: Any) -> Any:
    # numpy arrays/scalars and torch tensors, without importing either.
    for method in ("tolist", "item"):
        convert = getattr(obj, method, None)
        if callable(convert):
            return convert()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _to_json(value: JsonLike, what: str) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as err:
            raise ValueError(f"{what} is not valid JSON: {err}") from None
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a JSON string or a mapping, not {type(value).__name__}")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _run_field_values(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - _UPDATABLE_RUN_FIELDS)
    if unknown:
        raise TypeError(
            f"cannot set run field(s) {', '.join(unknown)}; "
            f"settable: {', '.join(sorted(_UPDATABLE_RUN_FIELDS))}"
        )
    out = dict(values)
    if out.get("env_json") is not None:
        out["env_json"] = _to_json(out["env_json"], "env_json")
    if "wall_time_s" in out:
        out["wall_time_s"] = _wall_time(out["wall_time_s"])
    return out


def _as_number(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) and callable(getattr(value, "item", None)):
        value = value.item()  # 0-d numpy / torch values
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(f"metric {key!r} must be a number or None, not {type(value).__name__}")


def _split_metrics(metrics: Mapping[str, Any]) -> tuple[list[float | None], str | None]:
    """Route known metrics to their columns (``EPOCH_METRIC_COLUMNS`` order), the rest to JSON."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a mapping, not {type(metrics).__name__}")
    columns: dict[str, float | None] = dict.fromkeys(EPOCH_METRIC_COLUMNS)
    extra: dict[str, Any] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"metric names must be strings, not {key!r}")
        if key in _RESERVED_METRIC_KEYS:
            raise ValueError(f"{key!r} is set by the store and cannot be a metric name")
        if key in columns:
            number = _as_number(key, value)
            if number is not None and math.isnan(number):
                # SQLite stores NaN as NULL; keeping it in extra_json makes a diverged loss read
                # back as nan rather than as "not measured".
                extra[key] = number
                number = None
            columns[key] = number
        else:
            extra[key] = value
    try:
        extra_json = json.dumps(extra, default=_json_default) if extra else None
    except (TypeError, ValueError) as err:
        raise TypeError(f"extra metrics are not JSON serialisable: {err}") from None
    return list(columns.values()), extra_json


def _epoch_dict(row: sqlite3.Row) -> dict[str, Any]:
    record = {c: row[c] for c in _EPOCH_COLUMNS if c != "extra_json"}
    if row["extra_json"]:
        record.update(json.loads(row["extra_json"]))
    return record


def _run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(**{key: row[key] for key in row.keys()})


def _max_epoch(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT MAX(epoch) FROM epochs WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] or 0


def _staleness(
    worker: str | None,
    heartbeat_at: str | None,
    host: str,
    now: datetime,
    stale_after_s: float | None,
) -> str | None:
    """Why a running run's worker is presumed dead, or None if it may be alive."""
    if worker:
        worker_host, _, pid = worker.rpartition(":")
        if worker_host == host and pid.isdigit() and not _process_alive(int(pid)):
            return f"worker {worker} died"
    if stale_after_s is not None:
        if heartbeat_at is None:
            return "worker never reported"
        age = (now - datetime.fromisoformat(heartbeat_at)).total_seconds()
        if age > stale_after_s:
            return f"worker {worker or '?'} silent for {age:.0f} s"
    return None


def _process_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would send CTRL_C_EVENT there; assume alive
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        # A zombie (dead, not yet reaped) still answers kill(0).
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True
