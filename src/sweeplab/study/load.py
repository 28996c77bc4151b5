"""Reading a study file: parse the TOML, validate everything, expand arms x grid x seeds into runs.

Nothing runs until the whole study has been checked, so a typo in the last arm fails in
milliseconds, not after hours of training. Every problem is a :class:`ConfigError` on one line
naming where it is: ``study.seeds``, ``baseline.optim.lr``, ``arm 'batch size'.batch_size``. The
first problem found is reported (they are cheap to fix one at a time and later errors are often
consequences of earlier ones).

How one run's config is resolved, later layers winning::

    [baseline]  <-  [[arm]] override, with this grid point's axis values  (deep_merge)
                <-  --set key=value ...                                    (deep_merge)
                <-  --epochs N
                <-  seed (from [study] seeds or --seeds)  and  best_metric = [study] metric

The command-line layers go on top of every resolved arm, baseline included, because they are
"run this study differently" requests (``--epochs 2`` for a quick pass must reach every run).
``seed`` and ``best_metric`` belong to the study, so writing them in ``[baseline]``, an arm or
``--set`` is an error rather than something silently overridden: a user who wrote ``seed = 42``
must not believe seed 42 was trained.

Checks that are about the file (duplicate grid points, an arm that changes nothing) are made on
the configs the file itself resolves to, before command-line overrides; overrides that later merge
grid points of an arm into one run (``--epochs 2`` on an arm sweeping ``epochs``) are not an error
but a warning, and the merged point is listed once, labelled with its resolved values.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeplab.config import RunConfig, deep_merge
from sweeplab.errors import ConfigError
from sweeplab.vocabulary import BASELINE_ARM
from sweeplab.resolve import build_run_config, run_id

from .grid import (
    apply_point,
    candidate_models,
    find_axes,
    format_point,
    get_path,
    grid_points,
    leaf_paths,
    make_label,
)
from . import limits
from .settings import RESERVED, _Cli, _Settings, _cli_overrides, _study_settings, figure_tables
from .spec import ArmSpec, RunSpec, StudySpec

#: Keys of an ``[[arm]]`` table that are not run-config fields.
ARM_KEYS = ("name", "description", "zip", "base")


# -- entry points -----------------------------------------------------------------------------------
def load_study(
    path_or_text: str | Path,
    *,
    overrides: list[str] | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
) -> StudySpec:
    """Read, validate and expand a study file.

    ``path_or_text`` is a path, or the TOML text itself when it is a ``str`` containing a newline
    (a study needs at least two tables, so its text always spans lines and a path never does).
    ``overrides`` are ``--set key=value`` items, ``seeds`` replaces the seed list with
    ``0..seeds-1``, ``epochs`` sets every run's epochs (see the module docstring for the order).
    """
    if isinstance(path_or_text, str) and "\n" in path_or_text:
        return parse_study(path_or_text, overrides=overrides, seeds=seeds, epochs=epochs)
    path = Path(path_or_text)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a study file (give the .toml file inside it)")
    if not path.is_file():
        raise ConfigError(f"no such study file: {path}")
    if path.stat().st_size > limits.MAX_FILE_BYTES:
        raise ConfigError(f"{path}: the study file is {path.stat().st_size:,} bytes; the limit is "
                          f"{limits.MAX_FILE_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 text file") from None
    return parse_study(text, str(path), overrides=overrides, seeds=seeds, epochs=epochs, base_dir=path.parent)


def parse_study(
    text: str,
    source_name: str = "<string>",
    *,
    overrides: list[str] | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    base_dir: str | Path | None = None,
) -> StudySpec:
    """Like :func:`load_study` for TOML text; ``source_name`` names it in syntax errors.

    ``base_dir``: where code files named in it (``"nets.py:CoolNet"``) are (default: the working
    directory).
    """
    limits.check_text_size(text, source_name)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib's message ends with "(at line L, column C)".
        raise ConfigError(f"{source_name}: invalid TOML: {e}") from None
    except RecursionError:  # tomllib parses nested arrays recursively
        raise ConfigError(f"{source_name}: nested more than {limits.MAX_DEPTH} levels deep") from None
    return study_from_dict(doc, text, overrides=overrides, seeds=seeds, epochs=epochs, base_dir=base_dir)


def study_from_dict(
    doc: Mapping[str, Any],
    source: str | None = None,
    *,
    overrides: list[str] | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    base_dir: str | Path | None = None,
) -> StudySpec:
    """A study from its parsed tables (``{"study": {...}, "baseline": {...}, "arm": [...]}``), as
    a notebook builds one; ``source`` is the text to store (default: the tables as JSON)."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"a study is a table of [study], [baseline] and [[arm]] (got {type(doc).__name__})")
    limits.check_depth(doc)
    text = source if source is not None else json.dumps(doc, indent=1, sort_keys=True, default=str)

    for key in doc:
        if key not in ("study", "baseline", "arm", "figure"):
            raise ConfigError("unknown top-level table or key (a study file has [study], [baseline], "
                              "[[arm]] and [[figure]] tables)", path=key)
    settings = _study_settings(doc.get("study"))
    cli = _cli_overrides(overrides, seeds, epochs)
    if seeds is not None:
        limits.check_seed_count(seeds, "--seeds")
    seed_list = tuple(range(seeds)) if seeds is not None else settings.seeds

    baseline = _baseline_table(doc.get("baseline"))
    base_cfg = _build(_with_study_keys(baseline, seed_list[0], settings.metric), BASELINE_ARM, base_dir=base_dir)
    _check_metric_split(base_cfg, settings.metric, BASELINE_ARM)

    arms = _arm_tables(doc.get("arm"), baseline, settings.include_baseline)
    if not arms:
        raise ConfigError("the study has no runs: add [[arm]] tables or set include_baseline = true",
                          path="study.include_baseline")

    resolved = [_resolve_arm(arm, baseline, base_cfg, settings, seed_list[0], base_dir) for arm in arms]

    figures = figure_tables(doc.get("figure"), [a.spec.name for a in arms])
    runs: list[RunSpec] = []
    warnings: list[str] = []
    for arm, points in zip(arms, resolved):
        limits.check_run_count(len(points), len(seed_list), len(runs))
        _expand_arm(arm, points, cli, settings.metric, seed_list, runs, warnings, base_dir)

    return StudySpec(
        name=settings.name,
        description=settings.description,
        metric=settings.metric,
        seeds=seed_list,
        baseline=baseline,
        arms=tuple(a.spec for a in arms),
        runs=tuple(runs),
        reference=settings.reference,
        source=text,
        include_baseline=settings.include_baseline,
        cli_overrides=cli.record,
        warnings=tuple(warnings),
        figures=figures,
        resources=settings.resources,
    )


# -- [baseline] and [[arm]] -------------------------------------------------------------------------
def _check_reserved(table: Mapping[str, Any], where: str) -> None:
    for key, why in RESERVED.items():
        if key in table:
            raise ConfigError(why, path=f"{where}.{key}")


def _baseline_table(table: Any) -> dict[str, Any]:
    if table is None:
        raise ConfigError("missing [baseline] table (the run config every arm starts from)")
    if not isinstance(table, dict):
        raise ConfigError("must be a table: [baseline]", path=BASELINE_ARM)
    _check_reserved(table, BASELINE_ARM)
    axes = find_axes(table, candidate_models(table, table), BASELINE_ARM)
    if axes:
        raise ConfigError("a list here would be a grid axis, but [baseline] is one config; "
                          "put grids in an [[arm]]", path=f"{BASELINE_ARM}.{axes[0][0]}")
    return table


@dataclass
class _Arm:
    spec: ArmSpec
    where: str
    """Error path prefix: ``baseline`` or ``arm 'name'``."""
    points: list[dict[str, Any]]
    is_baseline: bool = False


def _arm_tables(raw: Any, baseline: dict[str, Any], include_baseline: bool) -> list[_Arm]:
    arms: list[_Arm] = []
    if include_baseline:
        spec = ArmSpec(BASELINE_ARM, "", {}, [], 0)
        arms.append(_Arm(spec, BASELINE_ARM, [{}], is_baseline=True))
    if raw is None:
        return arms
    if not isinstance(raw, list):
        raise ConfigError("write each arm as an [[arm]] table (an array of tables), not [arm]", path="arm")

    names = {a.spec.name for a in arms}
    for i, table in enumerate(raw, start=1):
        if not isinstance(table, dict):
            raise ConfigError(f"must be a table (got {table!r})", path=f"arm #{i}")
        name = table.get("name")
        if name is None:
            raise ConfigError("missing name: every [[arm]] needs a unique name", path=f"arm #{i}")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"name must be a non-empty string (got {name!r})", path=f"arm #{i}")
        limits.check_name(name, f"arm #{i}.name")
        where = f"arm {name!r}"
        if name in names:
            hint = (" (the study's [baseline] is an arm named 'baseline'; rename this arm or set "
                    "[study] include_baseline = false)") if name == BASELINE_ARM and include_baseline else ""
            raise ConfigError(f"duplicate arm name{hint}", path=where)
        names.add(name)

        for key in table:
            if key in ARM_KEYS:
                continue
            if key in RESERVED:
                raise ConfigError(RESERVED[key], path=f"{where}.{key}")
            if key not in RunConfig.model_fields:
                raise ConfigError(f"unknown key (an arm takes {', '.join(ARM_KEYS)} and run config keys: "
                                  f"{', '.join(RunConfig.model_fields)})", path=f"{where}.{key}")
        description = table.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"must be a string (got {description!r})", path=f"{where}.description")
        limits.check_description(description, f"{where}.description")
        zip_ = table.get("zip", False)
        if not isinstance(zip_, bool):
            raise ConfigError(f"must be true or false (got {zip_!r})", path=f"{where}.zip")

        own = {k: v for k, v in table.items() if k not in ARM_KEYS}
        axes = find_axes(own, candidate_models(own, baseline), where)
        limits.check_grid_size(axes, zip_, where)
        points = grid_points(axes, zip_, where)
        spec = ArmSpec(name, description, own, [k for k, _ in axes], len(arms), zip_, base=_base_name(table, where))
        arms.append(_Arm(spec, where, points))
    return _stack(arms, baseline)


def _base_name(table: Mapping[str, Any], where: str) -> str | None:
    base = table.get("base")
    if base is not None and (not isinstance(base, str) or not base.strip()):
        raise ConfigError(f"must be the name of another arm (got {base!r})", path=f"{where}.base")
    return None if base in (None, BASELINE_ARM) else base


def _stack(arms: list[_Arm], baseline: dict[str, Any]) -> list[_Arm]:
    """Arms with ``base = "other arm"`` build on that arm: their override is the parent's (itself
    resolved the same way) with theirs on top. The parent must be one config, not a grid."""
    by_name = {a.spec.name: a for a in arms}
    resolved: dict[str, dict[str, Any]] = {}

    def effective(arm: _Arm, chain: tuple[str, ...]) -> dict[str, Any]:
        name, base = arm.spec.name, arm.spec.base
        if name in resolved:
            return resolved[name]
        if base is None:
            resolved[name] = arm.spec.override
            return arm.spec.override
        if base in chain or base == name:
            raise ConfigError(f"arms build on each other in a circle: {' -> '.join((*chain, name, base))}",
                              path=f"{arm.where}.base")
        parent = by_name.get(base)
        if parent is None:
            known = ", ".join(a.spec.name for a in arms if not a.is_baseline) or "none"
            raise ConfigError(f"no arm named {base!r} to build on (arms: {known})", path=f"{arm.where}.base")
        if parent.spec.axes:
            raise ConfigError(f"arm {base!r} is a grid ({', '.join(parent.spec.axes)}); an arm can build only on "
                              "an arm with one config", path=f"{arm.where}.base")
        resolved[name] = deep_merge(effective(parent, (*chain, name)), arm.spec.override)
        return resolved[name]

    def base_of(name: str) -> str | None:
        return by_name[name].spec.base if name in by_name else None

    for arm in arms:  # before effective recurses along a chain, in whatever order the arms come
        limits.check_stack_depth(arm.spec.name, base_of, f"{arm.where}.base")
    out = []
    for arm in arms:
        override = effective(arm, ())
        if override is arm.spec.override:
            out.append(arm)
            continue
        # Which lists are grid axes depends on the model the arm ends up with, its parent's included.
        axes = find_axes(arm.spec.override, candidate_models(override, baseline), arm.where)
        points = grid_points(axes, arm.spec.zip, arm.where)
        spec = dataclasses.replace(arm.spec, override=override, axes=[k for k, _ in axes])
        out.append(_Arm(spec, arm.where, points, arm.is_baseline))
    return out


# -- resolving and expanding ------------------------------------------------------------------------
def _with_study_keys(data: Mapping[str, Any], seed: int, metric: str) -> dict[str, Any]:
    return {**data, "seed": seed, "best_metric": metric}


def _build(data: Mapping[str, Any], where: str, context: str = "", base_dir: str | Path | None = None) -> RunConfig:
    """build_run_config with errors prefixed by ``where`` and followed by ``context``."""
    try:
        return build_run_config(data, where, base_dir)
    except ConfigError as e:
        if not context:
            raise
        raise ConfigError(f"{e.message}{context}", path=e.path) from None


def _point_context(point: Mapping[str, Any]) -> str:
    return f" (grid point {format_point(point)})" if point else ""


def _check_metric_split(cfg: RunConfig, metric: str, where: str, context: str = "") -> None:
    # Picking the best epoch by a val_* metric needs a validation split; without one every run
    # would fail at its first epoch, so this is an error now rather than a warning.
    if metric.startswith("val_") and cfg.data.val_size is None and cfg.data.val_fraction is None:
        raise ConfigError(f"[study] metric = {metric!r} needs a validation split: set data.val_size or "
                          f"data.val_fraction{context}", path=f"{where}.data")


def _resolve_arm(arm: _Arm, baseline: dict[str, Any], base_cfg: RunConfig, settings: _Settings,
                 seed: int, base_dir: str | Path | None) -> list[dict[str, Any]]:
    """The file-level config dict of each grid point, after the checks that concern the file."""
    seen: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for point in arm.points:
        data = deep_merge(baseline, apply_point(arm.spec.override, point))
        cfg = _build(_with_study_keys(data, seed, settings.metric), arm.where, _point_context(point), base_dir)
        rid = run_id(cfg)
        if rid in seen:
            raise ConfigError(f"grid points {format_point(seen[rid])} and {format_point(point)} resolve to "
                              "the same config; remove one", path=arm.where)
        seen[rid] = point
        out.append(data)
    # Only meaningful when the baseline is itself an arm: otherwise [baseline] is just the
    # template and an arm equal to it is how the user names that config.
    if settings.include_baseline and not arm.is_baseline and set(seen) == {run_id(base_cfg)}:
        keys = leaf_paths(arm.spec.override)
        what = (f"every key it sets ({', '.join(keys)}) resolves to the baseline's config" if keys
                else "it sets no run config keys")
        raise ConfigError(f"changes nothing: {what}; drop the arm or change a value", path=arm.where)
    return out


def _expand_arm(arm: _Arm, configs: Sequence[dict[str, Any]], cli: _Cli, metric: str,
                seeds: tuple[int, ...], runs: list[RunSpec], warnings: list[str],
                base_dir: str | Path | None) -> None:
    """Append the arm's links (grid order, then seed order) to ``runs``."""
    first_point: dict[str, tuple[str, dict[str, Any]]] = {}
    for point, data in zip(arm.points, configs):
        final = deep_merge(data, cli.tree) if cli.tree else data
        # The values actually used: a command-line override of an axis key shows in the label.
        axes = {k: v for k in point if (v := get_path(final, k, None)) is not None}
        context = _point_context(point) + cli.context
        by_seed = [_build(_with_study_keys(final, s, metric), arm.where, context, base_dir) for s in seeds]
        _check_metric_split(by_seed[0], metric, arm.where, context)
        key = run_id(by_seed[0])
        if key in first_point:
            warnings.append(f"{arm.where}: with the command-line overrides, grid point {format_point(point)} "
                            f"is the same run as {format_point(first_point[key][1])}; it is listed once")
            continue
        label = make_label(arm.spec.name, axes)
        first_point[key] = (label, point)
        for seed, cfg in zip(seeds, by_seed):
            runs.append(RunSpec(arm.spec.name, label, seed, cfg, run_id(cfg), dict(axes), len(runs)))
