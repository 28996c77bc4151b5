"""Studies shipped with sweeplab (``src/sweeplab/studies/*.toml``), found by name."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
    p = STUDIES_DIR / f"{name}.toml"
    return p if p.is_file() else None
