"""Size limits of a study file, far above any real study, so that a typo is refused at once.

A grid of 10^6 points, ``seeds = 10**9`` or lists nested 2,000 deep would otherwise run for minutes,
exhaust memory or overflow the stack before anything is trained. Each limit is named in its error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sweeplab.errors import ConfigError

#: Runs (grid points x seeds, over all arms) one study may expand to.
MAX_RUNS = 10_000
#: Seeds of one study.
MAX_SEEDS = 1_000
#: Bytes of a study file.
MAX_FILE_BYTES = 1_000_000
#: Characters of a study or arm name, and of a description.
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 20_000
#: Nesting of tables and lists (a run config needs 4).
MAX_DEPTH = 16
#: Arms stacked on each other (``base = "..."``) in one chain: a few steps in any real study.
MAX_STACK = 100


def check_text_size(text: str, source: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{source}: the study file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")


def check_depth(doc: Any, where: str = "") -> None:
    """Refuse tables and lists nested deeper than MAX_DEPTH (iterative: no recursion to overflow)."""
    stack: list[tuple[Any, str, int]] = [(doc, where, 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", path=path or "<study>")
        if isinstance(node, Mapping):
            stack.extend((v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, path, depth + 1) for v in node)


def check_name(value: str, path: str) -> None:
    if len(value) > MAX_NAME_CHARS:
        raise ConfigError(f"is {len(value):,} characters long; the limit is {MAX_NAME_CHARS}", path=path)


def check_description(value: str, path: str) -> None:
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise ConfigError(f"is {len(value):,} characters long; the limit is {MAX_DESCRIPTION_CHARS:,}", path=path)


def check_seed_count(count: int, path: str) -> None:
    if count > MAX_SEEDS:
        raise ConfigError(f"{count:,} seeds; the limit is {MAX_SEEDS:,} per study", path=path)


def check_grid_size(axes: Sequence[tuple[str, Sequence[Any]]], zip_: bool, where: str) -> None:
    """Before the product is built: refuse a grid with more than MAX_RUNS points."""
    if not axes:
        return
    sizes = [len(v) for _, v in axes]
    points = max(sizes) if zip_ else math.prod(sizes)
    if points > MAX_RUNS:
        raise ConfigError(f"the grid has {points:,} points; a study may have at most {MAX_RUNS:,} runs", path=where)


def check_run_count(points: int, seeds: int, so_far: int) -> None:
    total = so_far + points * seeds
    if total > MAX_RUNS:
        raise ConfigError(f"the study expands to more than {MAX_RUNS:,} runs ({points:,} grid points x "
                          f"{seeds:,} seeds in one arm alone, {total:,} so far); split it into several studies",
                          path="study.seeds")


def check_stack_depth(name: str, base_of: Callable[[str], str | None], where: str) -> None:
    """Refuse an arm whose chain of bases (``base = "..."``, followed with ``base_of``) is longer
    than MAX_STACK, before anything recurses along it (a circle is left to its own error)."""
    chain, seen = [name], {name}
    while (base := base_of(chain[-1])) is not None and base not in seen:
        chain.append(base)
        seen.add(base)
        if len(chain) > MAX_STACK + 1:
            raise ConfigError(f"arms build on each other more than {MAX_STACK} deep ({name} -> {chain[1]} -> ...); "
                              f"the limit is {MAX_STACK}", path=where)
