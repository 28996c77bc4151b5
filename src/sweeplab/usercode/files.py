"""Finding the user's code files a config refers to and carrying their text in the config."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any, Mapping

from sweeplab.errors import ConfigError

#: ``file.py:Name``: a Python file (any path, no colon) and an identifier defined in it.
_REF = re.compile(r"(?P<file>[^:]+\.py):(?P<attr>[A-Za-z_]\w*)")
#: Config keys whose value may be a reference to the user's code.
REF_KEYS = (("model", "name"), ("data", "dataset"))
#: A code file larger than this is not a network definition (and would bloat every stored config).
MAX_SOURCE_BYTES = 1_000_000


def parse_ref(name: object) -> tuple[str, str] | None:
    """``"nets.py:CoolNet"`` -> ``("nets.py", "CoolNet")``; None for anything else (``"mlp"``)."""
    if not isinstance(name, str):
        return None
    m = _REF.fullmatch(name)
    return (m["file"], m["attr"]) if m else None


def ref_key(section: str) -> str:
    """The config key a reference in ``section`` lives under (for error messages)."""
    return "model.name" if section == "model" else "data.dataset"


def code_file(path: str, base_dir: Path, key: str) -> dict[str, str]:
    """Read ``path`` (relative to ``base_dir`` unless absolute) as a ``CodeFile`` dict."""
    p = Path(path).expanduser()
    full = p if p.is_absolute() else base_dir / p
    if not full.is_file():
        where = "it is a directory" if full.is_dir() else "no such file"
        raise ConfigError(f"{path}: {where} (looked for {full.resolve()}; paths are relative to the study "
                          "or config file)", path=key)
    size = full.stat().st_size
    if size > MAX_SOURCE_BYTES:
        raise ConfigError(f"{path} is {size:,} bytes; a code file may have at most {MAX_SOURCE_BYTES:,}", path=key)
    try:
        source = full.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 text file", path=key) from None
    return {"sha256": hashlib.sha256(source.encode()).hexdigest(), "source": source}


def attach_code(data: Mapping[str, Any], base_dir: str | Path | None) -> dict[str, Any]:
    """A copy of the config dict ``data`` whose ``code`` holds every file it refers to.

    Files already in ``data["code"]`` (a stored config, rebuilt) are kept as they are; others are
    read from disk under ``base_dir`` (the working directory when None).
    """
    refs = []
    for section, field in REF_KEYS:
        table = data.get(section)
        ref = parse_ref(table.get(field)) if isinstance(table, Mapping) else None
        if ref is not None:
            refs.append((ref[0], ref_key(section)))
    if not refs:
        return dict(data)
    out = copy.deepcopy(dict(data))
    code = out.get("code")
    code = dict(code) if isinstance(code, Mapping) else {}
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    for path, key in refs:
        if path not in code:
            code[path] = code_file(path, base, key)
    out["code"] = code
    return out
