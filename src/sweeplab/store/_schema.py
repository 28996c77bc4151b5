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

import hashlib
import json
import sqlite3
from collections.abc import Callable

#: "SwLb": marks a SQLite file as a sweeplab run store.
APPLICATION_ID = 0x53774C62


# _v1 and _v2 are over 60 lines on purpose: each is the DDL of one schema version, kept as one
# literal list of statements so the schema can be read (and diffed) as a whole.
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


def _v2(conn: sqlite3.Connection) -> None:
    """Study versions: a study whose definition changes keeps every earlier definition, with its
    arms and run links, as a numbered version (``store/versions.py``). ``arms`` and
    ``study_runs`` gain a ``version`` column in their keys, which SQLite can only do by
    rebuilding them; every existing study becomes version 1 of itself."""
    conn.execute(
        """
        CREATE TABLE study_versions (
            study       TEXT NOT NULL REFERENCES studies(name),
            version     INTEGER NOT NULL CHECK (version >= 1),
            spec_hash   TEXT NOT NULL,
            spec_json   TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            metric      TEXT,
            variant     INTEGER NOT NULL DEFAULT 0,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            PRIMARY KEY (study, version),
            UNIQUE (study, spec_hash)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE arms_v2 (
            study         TEXT NOT NULL,
            version       INTEGER NOT NULL,
            name          TEXT NOT NULL,
            position      INTEGER NOT NULL,
            override_json TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (study, version, name),
            FOREIGN KEY (study, version) REFERENCES study_versions(study, version)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE study_runs_v2 (
            study    TEXT NOT NULL,
            version  INTEGER NOT NULL,
            arm      TEXT NOT NULL,
            seed     INTEGER NOT NULL,
            run_id   TEXT NOT NULL REFERENCES runs(id),
            label    TEXT,
            position INTEGER NOT NULL,
            PRIMARY KEY (study, version, arm, run_id),
            FOREIGN KEY (study, version, arm) REFERENCES arms_v2(study, version, name)
        )
        """
    )
    rows = conn.execute(
        "SELECT name, spec_json, description, metric, created_at, updated_at FROM studies"
    ).fetchall()
    for name, spec_json, description, metric, created_at, updated_at in rows:
        # Frozen copy of versions.spec_hash as of this migration.
        canonical = json.dumps(json.loads(spec_json), sort_keys=True, separators=(",", ":"))
        conn.execute(
            "INSERT INTO study_versions (study, version, spec_hash, spec_json, description,"
            " metric, variant, created_at, updated_at) VALUES (?, 1, ?, ?, ?, ?, 0, ?, ?)",
            (
                name,
                hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
                spec_json,
                description,
                metric,
                created_at,
                updated_at,
            ),
        )
    conn.execute(
        "INSERT INTO arms_v2 (study, version, name, position, override_json)"
        " SELECT study, 1, name, position, override_json FROM arms"
    )
    conn.execute(
        "INSERT INTO study_runs_v2 (study, version, arm, seed, run_id, label, position)"
        " SELECT study, 1, arm, seed, run_id, label, position FROM study_runs"
    )
    conn.execute("DROP TABLE study_runs")
    conn.execute("DROP TABLE arms")
    # RENAME rewrites the foreign key of study_runs_v2 to follow arms_v2 -> arms.
    conn.execute("ALTER TABLE arms_v2 RENAME TO arms")
    conn.execute("ALTER TABLE study_runs_v2 RENAME TO study_runs")
    conn.execute("CREATE INDEX study_runs_run ON study_runs(run_id)")


def _v3(conn: sqlite3.Connection) -> None:
    """Arm descriptions get a column (filled from each version's spec, where the text already
    was); a run may be the continuation of another (``continued_from``: same config but for
    ``epochs``, trained on from that run's last checkpoint); LR range tests get a table: one row
    per test, its curve as JSON."""
    conn.execute("ALTER TABLE arms ADD COLUMN description TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE runs ADD COLUMN continued_from TEXT")
    for study, version, spec_json in conn.execute(
        "SELECT study, version, spec_json FROM study_versions"
    ).fetchall():
        for arm in json.loads(spec_json).get("arms", []):
            if isinstance(arm, dict) and arm.get("description"):
                conn.execute(
                    "UPDATE arms SET description = ? WHERE study = ? AND version = ? AND name = ?",
                    (str(arm["description"]), study, version, str(arm.get("name", ""))),
                )
    conn.execute(
        """
        CREATE TABLE lr_finds (
            id          INTEGER PRIMARY KEY,
            key         TEXT NOT NULL UNIQUE,
            study       TEXT,
            arm         TEXT,
            config_json TEXT NOT NULL,
            seed        INTEGER NOT NULL,
            curve_json  TEXT NOT NULL,
            suggestion  REAL,
            method      TEXT NOT NULL,
            detail      TEXT,
            created_at  TEXT NOT NULL
        )
        """
    )


def _v4(conn: sqlite3.Connection) -> None:
    """Evaluations every N steps (``eval_every_steps``): one row per evaluation, keyed by the
    run's global optimizer step. The foreign key to the epoch row means a step row exists only
    with the epoch it belongs to, committed in that epoch's transaction (``commit_epoch``), so a
    killed run leaves none of an unfinished epoch and its resume writes them once."""
    conn.execute(
        """
        CREATE TABLE steps (
            run_id      TEXT NOT NULL,
            step        INTEGER NOT NULL CHECK (step >= 1),
            epoch       INTEGER NOT NULL,
            train_loss  REAL,
            test_loss   REAL,
            test_acc    REAL,
            val_loss    REAL,
            val_acc     REAL,
            lr          REAL,
            finished_at TEXT NOT NULL,
            PRIMARY KEY (run_id, step),
            FOREIGN KEY (run_id, epoch) REFERENCES epochs(run_id, epoch)
        ) WITHOUT ROWID
        """
    )


#: _MIGRATIONS[v - 1] takes a database from schema version v - 1 to v.
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4]

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
