"""Schema of the run store and the migrations that build it, keyed by version.

The version lives in ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as a
sweeplab store so that pointing sweeplab at some other program's SQLite file fails clearly instead
of adding tables to it.

To change the schema: append a function to ``_MIGRATIONS`` that takes the database from the
previous version to the next (``ALTER TABLE ... ADD COLUMN`` for a new column) and add the field
to the matching record in ``records.py``. Never edit a migration that has shipped: databases in
the wild were built by it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

#: "SwLb": marks a SQLite file as a sweeplab run store.
APPLICATION_ID = 0x53774C62


def _v1(conn: sqlite3.Connection) -> None:
    statements = (
        # Status is validated in Python rather than by a CHECK constraint: adding a status later
        # would otherwise mean rebuilding the table, since SQLite cannot alter a constraint.
        """
        CREATE TABLE runs (
            id              TEXT PRIMARY KEY,
            config_json     TEXT NOT NULL,
            seed            INTEGER NOT NULL,
            label           TEXT,
            status          TEXT NOT NULL DEFAULT 'pending',
            status_detail   TEXT,
            data_source     TEXT,
            data_checksum   TEXT,
            env_json        TEXT,
            device          TEXT,
            params          INTEGER,
            flops           REAL,
            batch_size_used INTEGER,
            epochs_planned  INTEGER,
            created_at      TEXT NOT NULL,
            started_at      TEXT,
            finished_at     TEXT,
            wall_time_s     REAL NOT NULL DEFAULT 0,
            worker          TEXT,
            heartbeat_at    TEXT
        )
        """,
        "CREATE INDEX runs_status ON runs(status)",
        # WITHOUT ROWID: rows are small and always looked up by (run_id, epoch). The primary key
        # is what makes a second row for the same epoch impossible.
        """
        CREATE TABLE epochs (
            run_id             TEXT NOT NULL REFERENCES runs(id),
            epoch              INTEGER NOT NULL CHECK (epoch >= 1),
            train_loss         REAL,
            train_acc          REAL,
            test_loss          REAL,
            test_acc           REAL,
            val_loss           REAL,
            val_acc            REAL,
            lr                 REAL,
            epoch_time_s       REAL,
            train_images_per_s REAL,
            peak_mem_mb        REAL,
            extra_json         TEXT,
            finished_at        TEXT NOT NULL,
            PRIMARY KEY (run_id, epoch)
        ) WITHOUT ROWID
        """,
        # A plain rowid table: checkpoint blobs are large, which WITHOUT ROWID handles badly.
        # The (run_id, epoch) foreign key means a checkpoint can only describe a committed epoch.
        """
        CREATE TABLE checkpoints (
            run_id     TEXT NOT NULL REFERENCES runs(id),
            kind       TEXT NOT NULL CHECK (kind IN ('last', 'best')),
            epoch      INTEGER NOT NULL,
            data       BLOB NOT NULL,
            size_bytes INTEGER NOT NULL,
            sha256     TEXT NOT NULL,
            saved_at   TEXT NOT NULL,
            UNIQUE (run_id, kind),
            FOREIGN KEY (run_id, epoch) REFERENCES epochs(run_id, epoch)
        )
        """,
        """
        CREATE TABLE studies (
            name        TEXT PRIMARY KEY,
            description TEXT NOT NULL DEFAULT '',
            spec_json   TEXT NOT NULL,
            metric      TEXT,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE arms (
            study         TEXT NOT NULL REFERENCES studies(name),
            name          TEXT NOT NULL,
            position      INTEGER NOT NULL,
            override_json TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (study, name)
        )
        """,
        # Keyed by run as well as seed: an arm may hold several runs per seed (a grid inside an
        # arm), and two arms that resolve to the same config link the same run.
        """
        CREATE TABLE study_runs (
            study    TEXT NOT NULL,
            arm      TEXT NOT NULL,
            seed     INTEGER NOT NULL,
            run_id   TEXT NOT NULL REFERENCES runs(id),
            label    TEXT,
            position INTEGER NOT NULL,
            PRIMARY KEY (study, arm, run_id),
            FOREIGN KEY (study, arm) REFERENCES arms(study, name)
        )
        """,
        "CREATE INDEX study_runs_run ON study_runs(run_id)",
    )
    for statement in statements:
        conn.execute(statement)


#: _MIGRATIONS[v - 1] takes a database from schema version v - 1 to v.
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]

#: The schema version this code writes and reads.
SCHEMA_VERSION = len(_MIGRATIONS)


def current_version() -> int:
    """The newest schema version known to this code (read at call time, so tests can extend it)."""
    return len(_MIGRATIONS)


def migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Apply every migration after ``from_version``; the caller holds a write transaction.

    Runs inside the caller's transaction so that a crash mid-migration leaves the old version
    intact, and so that several processes opening a new file at once migrate it exactly once.
    """
    for version in range(from_version + 1, current_version() + 1):
        _MIGRATIONS[version - 1](conn)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {current_version()}")
