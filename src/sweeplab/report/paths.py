"""File names made from names in a study file, and the record of the figures a report wrote.

Study and arm names are data, not paths: ``../../victim``, ``/etc`` or a 5,000-character name
must neither leave the report folder nor exceed the file system's name limit. ``safe_name`` maps
any name to one path component; the figure manifest lets a report refresh delete exactly the
figures it wrote earlier and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

#: Longest slug (characters, all ASCII) before the hash suffix: far below the usual 255-byte limit.
MAX_SLUG = 80
MANIFEST = ".sweeplab-figures.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_FIGURE_FILE = re.compile(r"[A-Za-z0-9_.-]+\.png")


def safe_name(name: str, *, fallback: str = "study", lower: bool = False, max_len: int = MAX_SLUG) -> str:
    """``name`` as one safe path component: itself when it already is one, else a slug + hash.

    The slug keeps letters, digits, ``.``, ``_`` and ``-`` (runs of anything else become ``-``),
    never starts or ends with ``.`` or ``-`` (no ``..``, no hidden file) and is at most
    ``max_len`` characters. When it differs from ``name`` an 8-digit hash of the name is appended,
    so two names that slug alike still get different folders.
    """
    text = str(name)
    slug = _UNSAFE.sub("-", text.lower() if lower else text).strip(".-")
    if slug == text and 0 < len(slug) <= max_len:
        return slug
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug[:max_len].rstrip('.-') or fallback}-{digest}"


def report_dir(out: Path, study: str) -> Path:
    """Default folder of a study's report: ``OUT/reports/<safe study name>``."""
    return Path(out) / "reports" / safe_name(study)


def read_manifest(fig_dir: Path) -> set[str]:
    """Names of the figure files an earlier report wrote into ``fig_dir`` (empty if unknown)."""
    try:
        names = json.loads((fig_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and _FIGURE_FILE.fullmatch(n)}


def remove_stale(fig_dir: Path, previous: set[str], current: set[str]) -> None:
    """Delete the figures of ``previous`` that ``current`` no longer has; only plain files."""
    for name in sorted(previous - current):
        path = fig_dir / name
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
