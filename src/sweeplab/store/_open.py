"""Deciding, without writing anything, whether a file may be opened as a run store and how.

Opening a SQLite file for writing is not neutral: switching it to WAL rewrites header bytes 18-19
and creates ``-wal``/``-shm`` files beside it. So the identity of an existing file is checked
first through an ``immutable=1`` connection (no locks, no journal, no side files). Only a file that is empty, or that is (or is
becoming) a sweeplab store, is then opened normally.

Read-only opens (``status``, ``report``, ``export``) use ``mode=ro``; where the store's folder is
not writable (a read-only filesystem, a 0555 folder), SQLite cannot create the ``-shm`` index a
WAL reader needs and fails with "unable to open database file", so such a store is read with
``immutable=1`` instead: nobody can be writing to it there.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from sweeplab.errors import StoreError

from . import _schema


def check_identity(path: Path) -> None:
    """Raise ``StoreError`` unless ``path`` is missing, empty, or a (possibly new) sweeplab store.

    Reads only, and only through SQLite (an immutable connection): a plain ``open``/``close`` of
    the file in a process that holds another connection to it would release that connection's
    POSIX locks (SQLite's "how to corrupt" section 2.2) and let a concurrent checkpoint tear a
    reader's pages. A store that another process is creating right now carries no mark in its
    main file yet (the first transaction is still in the WAL) but has no tables there either, so
    it passes; ``Store._configure`` then reads the committed header through SQLite.
    """
    where = str(path)
    try:
        if path.stat().st_size == 0:
            return
    except FileNotFoundError:
        return
    except OSError as err:
        raise StoreError(f"cannot read the run store ({err.strerror})", where) from None
    # No locks are taken here: a checkpoint running while we read could show a torn page, so a
    # refusal is confirmed by looking again.
    attempts = 10
    for attempt in range(attempts):
        try:
            app_id, version, tables = _identity(path)
        except StoreError:  # a torn page read while a writer checkpoints; refused only if it stays
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
            continue
        if app_id == _schema.APPLICATION_ID or (app_id == 0 and version == 0 and not tables):
            return
        if attempt < attempts - 1:
            time.sleep(0.05)
    if app_id != 0 or version != 0:
        raise StoreError("is a SQLite database of another program, not a sweeplab run store", where)
    raise StoreError("is a SQLite database with tables of its own, not a sweeplab run store", where)


def _identity(path: Path) -> tuple[int, int, bool]:
    """(application_id, user_version, has tables) of the main file, read immutably."""
    try:
        conn = sqlite3.connect(immutable_uri(path), uri=True)
    except sqlite3.Error as err:
        raise StoreError(f"cannot open the run store ({err})", str(path)) from None
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None
        return app_id, version, tables
    except sqlite3.DatabaseError as err:
        raise StoreError(
            f"not a SQLite database ({err}); give the path of a sweeplab run store", str(path)
        ) from None
    finally:
        conn.close()


def immutable_uri(path: Path) -> str:
    """URI opening ``path`` read-only with no locking and no ``-wal``/``-shm`` side files."""
    return path.resolve().as_uri() + "?mode=ro&immutable=1"


def readonly_uri(path: Path) -> str:
    """URI for a read-only ``Store``: ``mode=ro``, or ``immutable=1`` where the folder is not
    writable (see the module docstring). A store whose folder is read-only but which still has
    an unmerged ``-wal`` beside it is read through that log (possible only if its ``-shm``
    exists too); it cannot be read immutably without losing the log's commits."""
    resolved = path.resolve()
    if folder_writable(resolved.parent):
        return resolved.as_uri() + "?mode=ro"
    wal = resolved.with_name(resolved.name + "-wal")
    try:
        unmerged = wal.stat().st_size > 0
    except OSError:
        unmerged = False
    if unmerged:
        return resolved.as_uri() + "?mode=ro"
    return immutable_uri(resolved)


def folder_writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (False on a read-only filesystem)."""
    return os.access(folder, os.W_OK | os.X_OK)
