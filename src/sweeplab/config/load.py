"""Building a :class:`RunConfig` from TOML files, ``--set key=value`` overrides and plain dicts.

All failures become :class:`ConfigError` with the full key path, the offending value and what is
allowed, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from sweeplab.errors import ConfigError

from .schema import RunConfig


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no such file: {p}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML in {p}: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not a UTF-8 text file") from None


#: What a ``--set`` value may be without TOML quotes: a bare word such as ``mlp``, ``cuda:0``,
#: ``nets.py:CoolNet`` or a path (no brackets, braces, quotes, commas or spaces, which mean a TOML
#: value that failed to parse).
_BARE_WORD = re.compile(r"[^\s\[\]{}\"',=#]+")


def parse_value(text: str, key: str = "") -> Any:
    """Read a ``--set`` value as a TOML literal; bare words fall back to strings.

    So ``[110,74]`` is a list, ``1e-3`` a float, ``true`` a bool and ``mlp`` the string "mlp";
    a malformed literal (``[16,``) is an error, not the string "[16,".
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except RecursionError:
        raise ConfigError(f"value nested too deeply (got {text[:40]!r}...)", path=f"--set {key}") from None
    except tomllib.TOMLDecodeError:
        if _BARE_WORD.fullmatch(text):
            return text
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ConfigError(f"not a valid value (got {shown!r}); write a TOML value such as 0.1, [64, 32], true, "
                          "\"text\" or a bare word", path=f"--set {key}") from None


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Turn ``["optim.lr=1e-3", "model.hidden=[64]"]`` into a nested override dict."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set expects key=value with a dotted key such as optim.lr=0.01, got {item!r}")
        set_path(out, key, parse_value(value.strip(), key))
    return out


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted == "a.b.c"``, creating tables on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for i, part in enumerate(parents):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{'.'.join(parents[: i + 1])} is a value, not a table", path=dotted)
        node = nxt
    node[leaf] = value


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``; lists and empty tables stay values.

    A config's ``code`` table flattens to one hash per file (``code.nets.py`` -> sha256): tables,
    diffs and exports show which code a run used, not its text.
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if dotted == "code" and isinstance(value, Mapping):
            out.update({f"code.{path}": f.get("sha256") if isinstance(f, Mapping) else f for path, f in value.items()})
            continue
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``; tables merge, values replace.

    When ``model.name`` changes, the base's model options are dropped: options of one model
    family mean nothing to another (``hidden`` is no option of ``tutorial_cnn``).
    """
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            if k == "model" and "name" in v and v["name"] != out[k].get("name"):
                keep = {kk: vv for kk, vv in out[k].items() if kk in ("init", "init_std")}
                out[k] = deep_merge(keep, v)
            else:
                out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line for the first pydantic error: ``path: message (got value)``."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"] if _is_field(p))
    path = ".".join(p for p in (prefix, loc) if p)
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    elif e["type"] == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    value = e.get("input")
    shown = "" if e["type"] in ("extra_forbidden", "missing") or isinstance(value, dict) else f" (got {value!r})"
    if e["type"] == "extra_forbidden":
        shown = ""
    return f"{path or '<config>'}: {msg}{shown}"


_TYPE_TAGS = {"int", "float", "str", "bool", "list", "dict", "tuple", "none"}


def _is_field(part: object) -> bool:
    """pydantic puts union member tags (``constrained-int``, ``literal['max']``) in error locations."""
    if isinstance(part, int):
        return True
    text = str(part)
    return text.isidentifier() and text not in _TYPE_TAGS


def validate_run_config(data: Mapping[str, Any], prefix: str = "") -> RunConfig:
    """The schema's checks only: a nested dict into a RunConfig, errors as one ``ConfigError``
    line with the key path. ``sweeplab.resolve.build_run_config`` adds the registries' checks."""
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, prefix)) from None
