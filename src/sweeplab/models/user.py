"""The user's own models: a class or builder function from a code file or a notebook.

Unlike the built-ins, a user's model need not take ``(input_shape, num_classes, ...)``: it gets
them when its signature names them, and every other parameter with a default is a ``model.*``
option (``class CoolNet(nn.Module): def __init__(self, width=64)`` has the option ``width``).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from sweeplab.errors import ConfigError
from sweeplab.usercode import an, load_attribute, parse_ref

from .entry import COMMON_OPTIONS, InputKind, ModelEntry, _default

#: Parameters a user's builder gets from the data when it names them.
DATA_PARAMS = ("input_shape", "num_classes")
_SKIP = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _describe(obj: Any) -> str:
    doc = inspect.cleandoc(obj.__doc__) if isinstance(obj.__doc__, str) else ""  # its own, not nn.Module's
    return doc.splitlines()[0] if doc else f"{getattr(obj, '__qualname__', obj)} (user code)"


def _options(obj: Callable[..., Any], name: str) -> tuple[dict[str, object], set[str]]:
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot read its signature", path="model.name") from None
    wants = {p.name for p in params if p.name in DATA_PARAMS}
    options: dict[str, object] = {}
    for p in params:
        if p.name in wants or p.kind in _SKIP:
            continue
        if p.default is inspect.Parameter.empty or p.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigError(f"{name}: parameter {p.name!r} needs a default to be a model option "
                              f"({' and '.join(DATA_PARAMS)} are passed when the builder names them)",
                              path="model.name")
        if p.name in COMMON_OPTIONS:
            raise ConfigError(f"{name}: parameter {p.name!r} is reserved (every model takes init and "
                              "init_std)", path="model.name")
        options[p.name] = _default(p.default)
    return options, wants


def make_entry(obj: Any, name: str, inputs: InputKind = "any", *, local: bool = False,
               source_sha256: str | None = None) -> ModelEntry:
    """A registry entry for the user's ``obj``: an ``nn.Module`` subclass or a function."""
    if not (inspect.isclass(obj) and issubclass(obj, nn.Module)) and not inspect.isroutine(obj):
        what = "a class that is not an nn.Module" if inspect.isclass(obj) else an(type(obj).__name__)
        raise ConfigError(f"{name} is {what}; a model is an nn.Module class or a function that returns one",
                          path="model.name")
    options, wants = _options(obj, name)

    def builder(input_shape: tuple[int, ...], num_classes: int, **kwargs: object) -> nn.Module:
        given = {"input_shape": tuple(input_shape), "num_classes": num_classes}
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        try:
            model = obj(**{k: given[k] for k in wants}, **kwargs)
        except ConfigError:
            raise
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's constructor: one line, naming model and options
            detail = f"SystemExit: {e.code}" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
            raise ConfigError(f"building {name}({shown}) failed: {detail}", path="model.name") from None
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{name}({shown}) returned {an(type(model).__name__)}, not an nn.Module",
                              path="model.name")
        return model

    return ModelEntry(builder, inputs, _describe(obj), options, source_sha256, local)


_FILE_ENTRIES: dict[tuple[str, str], ModelEntry] = {}


def file_entry(name: str, code: Mapping[str, Any]) -> ModelEntry:
    """The entry for ``name = "nets.py:CoolNet"`` from the run's code files (cached by content)."""
    ref = parse_ref(name)
    assert ref is not None
    file = code.get(ref[0])
    key = (name, getattr(file, "sha256", ""))
    if key not in _FILE_ENTRIES:
        _FILE_ENTRIES[key] = make_entry(load_attribute(ref, code, "model.name"), name)
    return _FILE_ENTRIES[key]


def source_hash(obj: Any) -> str | None:
    """SHA-256 of ``obj``'s source when Python can find it (a notebook cell, a module), else None."""
    try:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()
    except (OSError, TypeError):
        return None
