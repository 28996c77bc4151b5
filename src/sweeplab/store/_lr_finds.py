"""LR range tests (``sweeplab lr-find``): one row per test in ``lr_finds``, keyed by the test.

A test never touches ``runs``, ``epochs`` or checkpoints: its model is thrown away, and only its
curve and suggestion are kept here, for reports and the dashboard to show.
"""

from __future__ import annotations

import sqlite3

from sweeplab.errors import StoreError
from sweeplab.store.records import JsonLike, LrFindRecord
from sweeplab.store._rows import _now, _to_json
from sweeplab.store._base import _Base

_COLUMNS = "id, key, study, arm, config_json, seed, curve_json, suggestion, method, detail, created_at"


def _record(row: sqlite3.Row) -> LrFindRecord:
    return LrFindRecord(**{k: row[k] for k in row.keys()})


class _LrFinds(_Base):
    """LR range tests: save one (replacing an earlier run of the same test), read them back."""

    def save_lr_find(
        self,
        key: str,
        *,
        config_json: JsonLike,
        seed: int,
        curve_json: JsonLike,
        suggestion: float | None,
        method: str,
        detail: str | None = None,
        study: str | None = None,
        arm: str | None = None,
    ) -> LrFindRecord:
        """Store the test ``key``; a test stored before under the same key is replaced (same
        row id, new values and time). Returns the stored record."""
        if not key:
            raise ValueError("an LR range test needs a key")
        config = _to_json(config_json, "config_json")
        curve = _to_json(curve_json, "curve_json")
        values = (study, arm, config, int(seed), curve,
                  None if suggestion is None else float(suggestion), method, detail, _now())
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO lr_finds (key, study, arm, config_json, seed, curve_json, suggestion, method,"
                " detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET study = excluded.study, arm = excluded.arm,"
                " config_json = excluded.config_json, seed = excluded.seed, curve_json = excluded.curve_json,"
                " suggestion = excluded.suggestion, method = excluded.method, detail = excluded.detail,"
                " created_at = excluded.created_at",
                (key, *values),
            )
            row = conn.execute(f"SELECT {_COLUMNS} FROM lr_finds WHERE key = ?", (key,)).fetchone()
            return _record(row)

    def get_lr_find(self, key: str) -> LrFindRecord:
        """The stored test ``key``; ``StoreError`` if there is none."""
        with self._reading() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM lr_finds WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"no LR range test with key {key!r} in the run store")
        return _record(row)

    def lr_finds(self, study: str | None = None, arm: str | None = None) -> list[LrFindRecord]:
        """Stored tests, oldest first; only the study's (and the arm's) when given."""
        where, params = [], []
        for column, value in (("study", study), ("arm", arm)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM lr_finds" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._reading() as conn:
            rows = conn.execute(sql + " ORDER BY created_at, id", params).fetchall()
        return [_record(r) for r in rows]
