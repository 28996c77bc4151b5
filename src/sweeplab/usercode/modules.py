"""Executing the user's code files from their text, once per process and content."""

from __future__ import annotations

import linecache
import re
import sys
import traceback
import types
from collections.abc import Mapping
from typing import Any

from sweeplab.errors import ConfigError

#: sha256 -> the module executed from that text in this process.
_MODULES: dict[str, types.ModuleType] = {}


def _module_name(path: str, sha256: str) -> str:
    stem = re.sub(r"\W", "_", path.rsplit("/", 1)[-1].removesuffix(".py")) or "code"
    return f"sweeplab_user.{stem}_{sha256[:12]}"


def _line_in(exc: BaseException, path: str) -> int | None:
    """The deepest line of ``path`` in the traceback of ``exc`` (where the user's code failed)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == path:
            line = frame.lineno
    return line


def failure_line(e: BaseException, path: str) -> str:
    """``nets.py:12: ValueError: ...``: an exception of the user's code, at its deepest line in
    ``path``; ``sys.exit()`` shows as ``SystemExit: 0`` (an exit is a failure here, not a quit)."""
    line = _line_in(e, path)
    where = f"{path}:{line}" if line else path
    text = f"{where}: {type(e).__name__}: {e.code if isinstance(e, SystemExit) else e}"
    if isinstance(e, ModuleNotFoundError) and e.name and "." not in e.name:
        text += (f" (a code file travels alone: copy what it uses from {e.name}.py into {path}, or install "
                 "it as a package)")
    return text


def an(kind: str) -> str:
    """``"a list"``, ``"an int"``: the type name of a wrong value with its article."""
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def load_module(path: str, file: Any) -> types.ModuleType:
    """Execute the ``CodeFile`` ``file`` (recorded under ``path``) as a module; cached by hash.

    A syntax error or an exception while executing it (a failed import, say) is one
    :class:`ConfigError` naming the file and line: ``nets.py:12: SyntaxError: invalid syntax``.
    """
    sha, source = file.sha256, file.source
    if sha in _MODULES:
        return _MODULES[sha]
    # Tracebacks and inspect.getsource show the user's lines under the name they wrote.
    linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    try:
        compiled = compile(source, path, "exec")
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: SyntaxError: {e.msg}") from None
    name = _module_name(path, sha)
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules.setdefault("sweeplab_user", types.ModuleType("sweeplab_user"))
    sys.modules[name] = module  # dataclasses, pickle and typing look modules up by name
    try:
        exec(compiled, module.__dict__)  # noqa: S102 - running the user's own code is the point
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure of the user's module is one line
        del sys.modules[name]
        raise ConfigError(failure_line(e, path)) from None
    _MODULES[sha] = module
    return module


def load_attribute(ref: tuple[str, str], code: Mapping[str, Any], key: str) -> Any:
    """The object ``ref = (file, name)`` names, from the run's ``code``."""
    path, attr = ref
    if path not in code:
        raise ConfigError(f"{path}:{attr}: the run's config does not carry {path} (build it from its study "
                          "or config file)", path=key)
    module = load_module(path, code[path])
    if not hasattr(module, attr):
        defined = sorted(n for n, v in vars(module).items()
                         if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == module.__name__)
        raise ConfigError(f"{path} has no {attr!r} (it defines: {', '.join(defined) or 'nothing callable'})",
                          path=key)
    return getattr(module, attr)
