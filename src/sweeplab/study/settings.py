"""The ``[study]`` table (name, description, seeds, metric, baseline switch, reference) and the
command-line overrides a run adds on top of the file (``--set``, ``--seeds``, ``--epochs``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweeplab.config import parse_set
from sweeplab.config.schema import MAX_SEED  # seeds go to torch, numpy and random: 0 <= seed < 2**32
from sweeplab.errors import ConfigError
from sweeplab.vocabulary import METRICS

from . import limits

#: Keys of the ``[study]`` table.
STUDY_KEYS = ("name", "description", "seeds", "metric", "include_baseline", "reference", "resources")
#: Keys of ``[study] resources``: what each run reserves on a Ray cluster (``--executor ray``).
RESOURCE_KEYS = ("num_cpus", "num_gpus")
#: Run-config keys the study sets itself, with where to set them instead.
RESERVED = {
    "seed": "the seed of each run comes from [study] seeds (or --seeds N); remove it here",
    "best_metric": "every run's best_metric is the study's metric; set [study] metric instead",
}


# -- [study] ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    name: str
    description: str
    seeds: tuple[int, ...]
    metric: str
    include_baseline: bool
    reference: dict[str, Any]
    resources: dict[str, float]


def _is_int(value: Any) -> bool:
    # TOML `true` arrives as a bool, which Python counts as an int; it is never a seed.
    return isinstance(value, int) and not isinstance(value, bool)


def _study_settings(table: Any) -> _Settings:
    if table is None:
        raise ConfigError("missing [study] table (it needs at least name = \"...\")")
    if not isinstance(table, dict):
        raise ConfigError("must be a table: [study]", path="study")
    for key in table:
        if key not in STUDY_KEYS:
            raise ConfigError(f"unknown key (allowed: {', '.join(STUDY_KEYS)})", path=f"study.{key}")

    name = table.get("name")
    if name is None:
        raise ConfigError("missing: every study needs a name", path="study.name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"must be a non-empty string (got {name!r})", path="study.name")
    limits.check_name(name, "study.name")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"must be a string (got {description!r})", path="study.description")
    limits.check_description(description, "study.description")
    metric = table.get("metric", "test_acc")
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r} (allowed: {', '.join(METRICS)})", path="study.metric")
    include_baseline = table.get("include_baseline", True)
    if not isinstance(include_baseline, bool):
        raise ConfigError(f"must be true or false (got {include_baseline!r})", path="study.include_baseline")
    reference = table.get("reference", {})
    if not isinstance(reference, dict):
        raise ConfigError(f"must be a table (got {reference!r})", path="study.reference")
    return _Settings(name.strip(), description, _seed_list(table.get("seeds", 1)), metric, include_baseline,
                     reference, resource_table(table.get("resources")))


def resource_table(value: Any) -> dict[str, float]:
    """``resources = { num_cpus = 2, num_gpus = 0.25 }``: what each run reserves on Ray (only the
    keys given; ``--num-cpus``/``--num-gpus`` override them)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"must be a table such as {{ num_cpus = 2, num_gpus = 0.25 }} (got {value!r})",
                          path="study.resources")
    out: dict[str, float] = {}
    for key, v in value.items():
        where = f"study.resources.{key}"
        if key not in RESOURCE_KEYS:
            raise ConfigError(f"unknown key (allowed: {', '.join(RESOURCE_KEYS)})", path=where)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v or v in (float("inf"), float("-inf")):
            raise ConfigError(f"must be a number (got {v!r})", path=where)
        low = 0.01 if key == "num_cpus" else 0.0  # as --num-cpus / --num-gpus accept
        if v < low:
            raise ConfigError(f"must be >= {low:g} (got {v!r})", path=where)
        if key == "num_gpus" and v > 1 and v != int(v):  # Ray shares one GPU, or gives whole GPUs
            raise ConfigError(f"must be a fraction below 1 or a whole number (got {v!r})", path=where)
        out[key] = float(v)
    return out


def _seed_list(value: Any) -> tuple[int, ...]:
    where = "study.seeds"
    if _is_int(value):
        if value < 1:
            raise ConfigError(f"must be >= 1 (got {value}); seeds = N means seeds 0..N-1", path=where)
        limits.check_seed_count(value, where)
        return tuple(range(value))
    if not isinstance(value, list):
        raise ConfigError(f"must be a count (seeds = 3) or a list of seeds (seeds = [0, 1, 2]), got {value!r}",
                          path=where)
    if not value:
        raise ConfigError("empty seed list: give at least one seed", path=where)
    limits.check_seed_count(len(value), where)
    for s in value:
        if not _is_int(s) or not 0 <= s <= MAX_SEED:
            raise ConfigError(f"seeds must be integers in [0, 2**32 - 1] (got {s!r})", path=where)
    dups = sorted({s for s in value if value.count(s) > 1})
    if dups:
        raise ConfigError(f"duplicate seeds {dups}: each seed would be the same run", path=where)
    return tuple(value)


# -- command-line overrides -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cli:
    tree: dict[str, Any]
    """--set items as a nested dict, plus epochs when --epochs is given."""
    record: dict[str, Any]
    """What was given, for StudySpec.cli_overrides."""
    context: str
    """Appended to errors they cause: " (with command-line overrides --set a=1 --epochs 2)"."""


def _cli_overrides(overrides: list[str] | None, seeds: int | None, epochs: int | None) -> _Cli:
    tree = parse_set(overrides)
    for key, why in RESERVED.items():
        if key in tree:
            raise ConfigError(why, path=f"--set {key}")
    for flag, value in (("--seeds", seeds), ("--epochs", epochs)):
        if value is not None and (not _is_int(value) or value < 1):
            raise ConfigError(f"must be an integer >= 1 (got {value!r})", path=flag)
    if epochs is not None:
        tree["epochs"] = epochs  # after --set: the dedicated flag wins over --set epochs=...
    record: dict[str, Any] = {}
    if overrides:
        record["set"] = list(overrides)
    if seeds is not None:
        record["seeds"] = seeds
    if epochs is not None:
        record["epochs"] = epochs
    # --seeds never makes a config invalid, so errors do not mention it.
    shown = [f"--set {item}" for item in overrides or []] + ([f"--epochs {epochs}"] if epochs is not None else [])
    context = f" (with command-line overrides {' '.join(shown)})" if shown else ""
    return _Cli(tree, record, context)


def figure_tables(value: Any, arm_names: list[str]) -> tuple[dict[str, Any], ...]:
    """``[[figure]] arms = ["rnn", "lstm"]`` (optional ``title``): arms the report draws together."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("write each figure as a [[figure]] table (an array of tables)", path="figure")
    out = []
    for i, table in enumerate(value):
        where = f"figure[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"must be a table (got {table!r})", path=where)
        for key in table:
            if key not in ("arms", "title"):
                raise ConfigError("unknown key (a [[figure]] takes arms and title)", path=f"{where}.{key}")
        arms = table.get("arms")
        if not isinstance(arms, list) or not arms or not all(isinstance(a, str) for a in arms):
            raise ConfigError(f"must be a non-empty list of arm names (got {arms!r})", path=f"{where}.arms")
        bad = [a for a in arms if a not in arm_names]
        if bad:
            raise ConfigError(f"{', '.join(map(repr, bad))} is not an arm of this study (its arms: "
                              f"{', '.join(arm_names)})", path=f"{where}.arms")
        title = table.get("title", "")
        if not isinstance(title, str):
            raise ConfigError(f"must be a string (got {title!r})", path=f"{where}.title")
        limits.check_name(title, f"{where}.title")  # a title of 200,000 characters took the report 50 s
        out.append({"arms": list(arms), **({"title": title} if title else {})})
    return tuple(out)
