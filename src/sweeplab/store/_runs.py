"""Runs: record, claim, update, finish and count them."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sweeplab.errors import StoreError
from sweeplab.store import versions
from sweeplab.store.records import RUN_STATUSES, STOPPED_STATUSES, JsonLike, RunRecord
from sweeplab.store._rows import (
    _RUN_SELECT,
    _check_run_id,
    _check_status,
    _marks,
    _now,
    _run_field_values,
    _run_record,
    _same_run_part,
    _staleness,
    _to_json,
    _wall_time,
    default_worker_id,
)
from sweeplab.store._base import _Base


class _Runs(_Base):
    """Runs: record, claim, update, finish and count them."""

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

    def shorter_runs(self, seed: int, epochs: int) -> list[RunRecord]:
        """Completed runs of seed ``seed`` planned for fewer than ``epochs`` epochs, with at least
        one epoch row, longest first: the candidates a longer run may continue (the caller
        compares configs)."""
        with self._reading() as conn:
            rows = conn.execute(
                _RUN_SELECT + " WHERE r.status = 'completed' AND r.seed = ? AND r.epochs_planned < ?"
                " AND EXISTS (SELECT 1 FROM epochs e WHERE e.run_id = r.id)"
                " ORDER BY epochs_done DESC, r.created_at, r.id",
                (int(seed), int(epochs)),
            ).fetchall()
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
        """Delete a run's epochs, step rows and checkpoints and reset it to ``pending`` (``--fresh``).

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
            conn.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            conn.execute(
                "UPDATE runs SET status = 'pending', status_detail = NULL, started_at = NULL,"
                " finished_at = NULL, wall_time_s = 0, worker = NULL, heartbeat_at = NULL, continued_from = NULL"
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

