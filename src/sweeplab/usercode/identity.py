"""What of a code file a run depends on: the named model or data function, what it uses.

A run's identity holds, per code file, a hash of the part of the file the run can depend on:
every top-level statement that is not a function or class definition (imports, constants,
setup), plus the definitions of the names the run refers to and, transitively, of every
top-level name those use. So editing ``CoolNet`` retrains the CoolNet runs and resumes the
BoringNet runs of the same file, and a comment, a docstring or a blank line changes nothing (the
hash is over the parsed code without docstrings, ``ast.unparse``, not the text).
"""

from __future__ import annotations

import ast
import functools
import hashlib

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _drop_docstrings(tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, *_DEFS)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]


@functools.lru_cache(maxsize=256)
def code_identity(source: str, names: frozenset[str]) -> str:
    """SHA-256 of the parts of ``source`` that the top-level ``names`` depend on (see above)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # reported when the module is loaded; identity falls back to the text
        return hashlib.sha256(source.encode()).hexdigest()
    _drop_docstrings(tree)
    defs = {n.name: n for n in tree.body if isinstance(n, _DEFS)}
    keep: set[str] = set()
    todo = list(names) + [name for stmt in tree.body if not isinstance(stmt, _DEFS) for name in _names_used(stmt)]
    while todo:
        name = todo.pop()
        if name in defs and name not in keep:
            keep.add(name)
            todo.extend(_names_used(defs[name]))
    parts = [ast.unparse(stmt) for stmt in tree.body if not isinstance(stmt, _DEFS) or stmt.name in keep]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
