"""The store's connection: opening, configuring and migrating the file, transactions, retries."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sweeplab.errors import StoreError
from sweeplab.store import _open as _open_checks
from sweeplab.store import _schema, versions
from sweeplab.store.records import Arm, RunRecord, StudyRecord
from sweeplab.store._rows import (
    DEFAULT_DB_PATH,
    _INHERITED_CONNECTIONS,
    _RUN_SELECT,
    _T,
    _is_busy,
    _run_record,
    _user_facing,
)


class _OlderSchema(Exception):
    """A read-only open found a store of an older schema (``_open`` upgrades it where it can)."""

    def __init__(self, version: int, newest: int):
        super().__init__(version, newest)
        self.version, self.newest = version, newest


class _Base:
    """A sweeplab run store in one SQLite file.

    ``Store(path)`` opens (creating the file, its folder and the schema if needed) for reading and
    writing; ``Store(path, readonly=True)`` opens an existing store for reporters and dashboards
    and never writes to it, but to upgrade a store an older sweeplab wrote (as a writer would).
    ``timeout_s`` is how long a write waits for another process's write lock before giving up
    with ``StoreError``. Use as a context manager or call ``close()``.
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "readwrite"
        return f"Store({str(self.path)!r}, {mode})"

    # ------------------------------------------------------------------ internals

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except _OlderSchema as err:
            if not self.readonly:
                raise
            older = err
        # A reader of a store an older sweeplab wrote: the store is ours (its identity was checked),
        # so it is upgraded as any writer would, in one transaction, and then read. Where it cannot
        # be written (a read-only filesystem or folder), it is refused saying what to do.
        path = self.path
        if not (_open_checks.folder_writable(path.resolve().parent) and os.access(path, os.W_OK)):
            raise StoreError(
                f"the run store uses an older schema ({older.version} < {older.newest}) and cannot be "
                "upgraded where it is (a read-only file or folder): copy it to a folder that can be "
                "written and read the copy", str(path))
        type(self)(path, timeout_s=self.timeout_s).close()  # migrates (see _configure)
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        if self.readonly:
            if not path.is_file():
                raise StoreError("no run store at this path (nothing has been run yet?)", str(path))
            # mode=ro: a reporter or dashboard must never create or lock out the file
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
            if not _open_checks.folder_writable(path.parent):  # else SQLite's "unable to open database file"
                raise StoreError(
                    "is in a folder that cannot be written (a read-only filesystem or folder); training "
                    "writes to the store, while status, report, export and serve only read it",
                    str(path),
                )
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
                raise _OlderSchema(version, newest)
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
            "SELECT name, override_json, description FROM arms WHERE study = ? AND version = ?"
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
            arms=tuple(Arm(a["name"], a["override_json"], a["description"]) for a in arms),
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


