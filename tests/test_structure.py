"""Issue 10: the package structure holds. No import cycle between sweeplab's packages, config and
models independent of what sits above them, every package importable alone, and rooms small.

The import graph is read from the source (every ``import``, function-level ones included), so a
lazy import that closes a circle is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "sweeplab"

#: What each low layer may import (besides itself); everything above may import these.
ALLOWED = {
    "errors": set(),
    "vocabulary": set(),
    "usercode": {"errors"},
    "config": {"errors", "usercode", "vocabulary"},
    "models": {"errors", "usercode"},
    "store": {"config", "errors", "vocabulary"},
    "data": {"config", "errors", "usercode"},
}

#: Modules allowed over 400 lines / functions over 60, each with the reason (also in the file).
BIG_MODULES = {"report/findings.py", "data/imagefolder.py", "models/numpy_mlp.py"}
BIG_FUNCTIONS = {"store/_schema.py:_v1", "store/_schema.py:_v2"}


def _package(path: Path) -> str:
    return path.relative_to(SRC).with_suffix("").parts[0]


def _targets(path: Path, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if not node.level:
            return [node.module or ""]
        here = list(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
        base = here[: len(here) - (node.level - 1)]
        if node.module:
            return [".".join([*base, node.module])]
        return [".".join([*base, a.name]) for a in node.names]
    return []


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        src = _package(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(path, node):
                parts = target.split(".")
                if parts[0] == "sweeplab" and len(parts) > 1 and parts[1] != src:
                    graph[src].add(parts[1])
    return graph


def test_no_import_cycle_between_packages():
    graph = import_graph()
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join([*path, node])}"
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        state[node] = "done"
        order.append(node)

    for node in sorted(graph):
        visit(node, [])
    assert {"config", "models", "store", "study", "train", "report", "cli"} <= set(order)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_low_layers_import_only_what_is_below_them(package):
    extra = import_graph().get(package, set()) - ALLOWED[package]
    assert not extra, f"sweeplab.{package} imports {sorted(extra)}"


def test_rooms_stay_small():
    too_big, too_long = [], []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 400 and rel not in BIG_MODULES:
            too_big.append(f"{rel} ({text.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60 and f"{rel}:{node.name}" not in BIG_FUNCTIONS:
                    too_long.append(f"{rel}:{node.name} ({n} lines)")
    assert not too_big and not too_long, (too_big, too_long)
    for rel in BIG_MODULES:  # each exception says why, in the file itself
        assert "over 400 lines" in (SRC / rel).read_text(encoding="utf-8"), rel


def test_every_package_imports_alone():
    # each in a fresh interpreter, side by side: a package that only imports after another one fails here
    packages = sorted({_package(p) for p in SRC.rglob("*.py")} - {"__init__", "__main__"})
    procs = {p: subprocess.Popen([sys.executable, "-c", f"import sweeplab.{p}"], stderr=subprocess.PIPE, text=True)
             for p in packages}
    failed = {p: proc.communicate(timeout=300)[1].strip().splitlines()[-1:] for p, proc in procs.items()
              if proc.wait(timeout=300) != 0}
    assert not failed, failed


def test_the_cli_starts_without_torch():
    # `sweeplab status` or `export` must not pay torch's import; commands that train import it themselves
    code = "import sys, sweeplab.cli.main; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
