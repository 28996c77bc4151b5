"""Studies: their versions, arms and run links, and reading a study's runs and epochs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sweeplab.errors import StoreError
from sweeplab.store import versions
from sweeplab.store.records import Arm, JsonLike, Link, StudyRecord, StudyRunRecord, StudyVersion
from sweeplab.store._rows import _EPOCH_COLUMNS, _now, _to_json, _epoch_dict
from sweeplab.store._base import _Base


class _Studies(_Base):
    """Studies: their versions, arms and run links, and reading a study's runs and epochs."""

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
        arm_rows = _arm_rows(name, arms, links)
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


def _arm_rows(name: str, arms: Sequence[Arm | str], links: Sequence[Link]) -> list[tuple[str, int, str, str]]:
    """The study's arm rows (name, position, override JSON, description), after checking that arm names are
    unique and every link names one of them, at most once per run."""
    arm_list = [a if isinstance(a, Arm) else Arm(a) for a in arms]
    arm_names = [a.name for a in arm_list]
    if len(set(arm_names)) != len(arm_names):
        raise ValueError(f"study {name!r}: duplicate arm names in {arm_names}")
    seen: set[tuple[str, str]] = set()
    for link in links:
        if link.arm not in arm_names:
            raise ValueError(f"study {name!r}: link to unknown arm {link.arm!r}")
        if (link.arm, link.run_id) in seen:
            raise ValueError(f"study {name!r}: run {link.run_id} linked twice to arm {link.arm!r}")
        seen.add((link.arm, link.run_id))
    return [(a.name, i, _to_json(a.override_json, f"arm {a.name!r} override_json"), a.description)
            for i, a in enumerate(arm_list)]
