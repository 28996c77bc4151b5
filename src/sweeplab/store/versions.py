"""Study versions: the SQL behind ``Store.save_study`` and the ``version=`` argument of reads.

A study is a name; what it means is its spec. Saving a study whose spec differs from every one
saved before under that name (another file with the same ``[study] name``, the README's quick
pass with ``--epochs 1 --seeds 1``) adds a version, numbered 1, 2, 3... in order of creation, with
its own arms and run links. Nothing of an earlier version is replaced or deleted: its links keep
finding their runs. Saving a spec seen before reuses its version.

Versions made with command-line overrides are *variants*. The version shown by default (reports,
exports, ``status``) is the most recently saved that is not a variant, else the most recently
saved; the ``studies`` row mirrors it, so listing studies shows what a report shows. All functions
here take a connection inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from sweeplab.errors import StoreError

from .records import StudyVersion

#: ORDER BY that puts the default version first.
_DEFAULT_FIRST = "ORDER BY variant ASC, updated_at DESC, version DESC"


def spec_hash(spec_json: str) -> str:
    """Identity of a definition: sha256 of its spec as canonical JSON (key order ignored)."""
    canonical = json.dumps(json.loads(spec_json), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def save_version(
    conn: sqlite3.Connection,
    name: str,
    *,
    spec: str,
    description: str,
    metric: str | None,
    variant: bool,
    arm_rows: Sequence[tuple[str, int, str]],
    link_rows: Sequence[tuple[str, int, str, str | None]],
    now: str,
) -> tuple[int, bool]:
    """Record this definition of study ``name`` (a new version unless its spec was saved before)
    and its arms ``(name, position, override_json, description)`` and links ``(arm, seed, run_id, label)``;
    then point the ``studies`` row at the default version. Returns (version, created)."""
    digest = spec_hash(spec)
    conn.execute(
        "INSERT INTO studies (name, description, spec_json, metric, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
        (name, description, spec, metric, now, now),
    )
    row = conn.execute(
        "SELECT version, variant FROM study_versions WHERE study = ? AND spec_hash = ?",
        (name, digest),
    ).fetchone()
    created = row is None
    if created:
        version = conn.execute(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM study_versions WHERE study = ?", (name,)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO study_versions (study, version, spec_hash, spec_json, description,"
            " metric, variant, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, version, digest, spec, description, metric, int(variant), now, now),
        )
    else:
        version = row[0]
        # A definition once saved without overrides stays a definition of its own.
        conn.execute(
            "UPDATE study_versions SET updated_at = ?, variant = ?"
            " WHERE study = ? AND version = ?",
            (now, int(bool(row[1]) and variant), name, version),
        )
        # Arms and links are derived from the spec, which is the same: rewriting them (in
        # the same transaction) keeps a version's listing exactly what its spec says.
        conn.execute("DELETE FROM study_runs WHERE study = ? AND version = ?", (name, version))
        conn.execute("DELETE FROM arms WHERE study = ? AND version = ?", (name, version))
    conn.executemany(
        "INSERT INTO arms (study, version, name, position, override_json, description)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(name, version, *arm) for arm in arm_rows],
    )
    conn.executemany(
        "INSERT INTO study_runs (study, version, arm, seed, run_id, label, position)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(name, version, *link, i) for i, link in enumerate(link_rows)],
    )
    _point_at_default(conn, name, now)
    return version, created


def _point_at_default(conn: sqlite3.Connection, name: str, now: str) -> None:
    """Copy the default version's description, spec and metric into the ``studies`` row."""
    default = conn.execute(
        "SELECT description, spec_json, metric FROM study_versions WHERE study = ? "
        + _DEFAULT_FIRST + " LIMIT 1",
        (name,),
    ).fetchone()
    conn.execute(
        "UPDATE studies SET description = ?, spec_json = ?, metric = ?, updated_at = ?"
        " WHERE name = ?",
        (default[0], default[1], default[2], now, name),
    )


def resolve(conn: sqlite3.Connection, name: str, version: int | None) -> int:
    """``version`` checked against the study's versions, or its default version if None."""
    numbers = [
        r[0]
        for r in conn.execute(
            "SELECT version FROM study_versions WHERE study = ? " + _DEFAULT_FIRST, (name,)
        ).fetchall()
    ]
    if not numbers:
        raise StoreError(f"no study named {name!r} in the run store")
    if version is None:
        return numbers[0]
    if isinstance(version, bool) or not isinstance(version, int) or version not in numbers:
        raise StoreError(
            f"study {name!r} has version{'s' if len(numbers) > 1 else ''} "
            f"{_ranges(sorted(numbers))} (got {version!r})",
            "--version",
        )
    return version


def version_info(conn: sqlite3.Connection, name: str, version: int) -> dict[str, Any]:
    """The version's row (spec, description, metric, variant, times) and the number of
    versions."""
    row = conn.execute(
        "SELECT * FROM study_versions WHERE study = ? AND version = ?", (name, version)
    ).fetchone()
    total = conn.execute(
        "SELECT COUNT(*) FROM study_versions WHERE study = ?", (name,)
    ).fetchone()[0]
    return {**{k: row[k] for k in row.keys()}, "versions": total}


def list_versions(conn: sqlite3.Connection, name: str) -> list[StudyVersion]:
    """Every version of the study, oldest first."""
    default = resolve(conn, name, None)
    rows = conn.execute(
        "SELECT v.version, v.spec_hash, v.variant, v.created_at, v.updated_at,"
        " (SELECT COUNT(*) FROM study_runs l WHERE l.study = v.study AND l.version = v.version)"
        " AS links FROM study_versions v WHERE v.study = ? ORDER BY v.version",
        (name,),
    ).fetchall()
    return [
        StudyVersion(
            study=name,
            version=r["version"],
            spec_hash=r["spec_hash"],
            variant=bool(r["variant"]),
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            links=r["links"],
            is_default=r["version"] == default,
        )
        for r in rows
    ]


def describe(version: int, versions: int, variant: bool, is_default: bool) -> str:
    """``version 2 of 3 (made with overrides; default)``: one phrase for report and export."""
    notes = ["made with command-line overrides" if variant else "from the study file"]
    if versions > 1:
        notes.append("the default" if is_default else "not the default: see --version")
    return f"version {version} of {versions} ({', '.join(notes)})"


def _ranges(numbers: list[int]) -> str:
    if numbers and numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 1:
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(str(n) for n in numbers)
