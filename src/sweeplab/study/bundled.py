"""Studies shipped with sweeplab (``src/sweeplab/studies/*.toml``), found by name."""

from __future__ import annotations

import tomllib
from pathlib import Path

from sweeplab.errors import ConfigError

STUDIES_DIR = Path(__file__).resolve().parent.parent / "studies"


def list_bundled() -> dict[str, str]:
    """Bundled study name -> its one-line description."""
    out = {}
    for p in sorted(STUDIES_DIR.glob("*.toml")):
        try:
            desc = tomllib.loads(p.read_text()).get("study", {}).get("description", "")
        except tomllib.TOMLDecodeError:
            desc = "(unreadable)"
        out[p.stem] = " ".join(str(desc).split())
    return out


def bundled_path(name: str) -> Path | None:
    """The file of the bundled study ``name``, or None: only the names ``list_bundled`` gives.

    ``name`` is looked up among the files of the bundled folder, never joined to it as a path, so
    ``../../x`` or an absolute path cannot reach a ``.toml`` file elsewhere.
    """
    by_name = {p.stem: p for p in STUDIES_DIR.glob("*.toml") if p.is_file()}
    return by_name.get(name)


def find_study_file(study: str | Path) -> Path:
    """A path to a TOML file, or the name of a study bundled with sweeplab."""
    p = Path(study)
    if p.is_file():
        return p
    found = bundled_path(str(study))
    if found is not None:
        return found
    names = ", ".join(sorted(list_bundled())) or "none"
    if p.is_dir():
        raise ConfigError(f"{str(study)!r} is a directory, not a study file: give a study TOML file "
                          f"or the name of a bundled study ({names})", path="STUDY")
    raise ConfigError(f"no study file {str(study)!r} and no bundled study of that name (bundled: {names})")
