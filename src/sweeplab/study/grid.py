"""Grids inside an arm: which lists are axes, how axes combine into points, how points are named.

In an arm, a list is a grid axis (``batch_size = [1, 4, 1000]``) unless the field it sets holds a
list by nature (``model.hidden``, ``schedule.milestones``, ``optim.betas``...): there a flat list
is one value and a list of lists is an axis (``hidden = [[64], [128, 64]]``). What is "by nature"
is read from the RunConfig schema (the pydantic field annotation) and, for model options, which
are free-form, from the model's default in the registry: ``mlp``'s ``hidden`` defaults to a list,
``rnn``'s ``hidden`` to an int, so ``hidden = [64, 128]`` is one value for ``mlp`` and a two-point
axis for ``rnn``.
"""

from __future__ import annotations

import copy
import itertools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from sweeplab.config import ModelConfig, RunConfig, flatten, set_path
from sweeplab.errors import ConfigError

#: An axis: dotted key and the values it takes, in the order written.
Axis = tuple[str, list[Any]]


# -- which fields hold lists ----------------------------------------------------------------------
def _is_sequence_type(tp: Any) -> bool:
    """True for ``list[...]``, ``tuple[...]`` and unions/Annotated wrappers containing one."""
    if tp in (list, tuple):
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _is_sequence_type(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence_type(a) for a in typing.get_args(tp))
    return origin in (list, tuple, Sequence)


def _section_class(tp: Any) -> type[BaseModel] | None:
    """The config section class behind an annotation (``AugmentConfig``, possibly Optional)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if (cls := _section_class(arg)) is not None:
                return cls
    return None


def _model_option_is_list(option: str, model_names: Sequence[str]) -> bool:
    from sweeplab.models import list_models, model_options

    known = list_models()
    # If any candidate model takes a list here, a flat list must stay a value for it; a model
    # name that is unknown is reported by validation, not here.
    return any(
        isinstance(model_options(name).get(option), (list, tuple)) for name in model_names if name in known
    )


def is_list_natured(path: Sequence[str], model_names: Sequence[str]) -> bool:
    """Whether the config field at ``path`` holds a list as its value.

    ``model_names`` are the models the arm may use (for free-form model options). Unknown paths
    are not list-natured: a list there is an axis, and validation then reports the unknown key.
    """
    cls: type[BaseModel] = RunConfig
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if cls is ModelConfig and part not in ModelConfig.model_fields:
            return last and _model_option_is_list(part, model_names)
        field = cls.model_fields.get(part)
        if field is None:
            return False
        if last:
            return _is_sequence_type(field.annotation)
        sub = _section_class(field.annotation)
        if sub is None:
            return False
        cls = sub
    return False


def candidate_models(override: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[str]:
    """Model names an arm's configs may use: its own ``model.name`` (one or an axis), else the
    baseline's, else the schema default."""
    name: Any = None
    if isinstance(override.get("model"), Mapping):
        name = override["model"].get("name")
    if name is None and isinstance(baseline.get("model"), Mapping):
        name = baseline["model"].get("name")
    if name is None:
        name = ModelConfig.model_fields["name"].default
    names = name if isinstance(name, list) else [name]
    return [n for n in names if isinstance(n, str)]


# -- finding and combining axes -------------------------------------------------------------------
def find_axes(override: Mapping[str, Any], model_names: Sequence[str], where: str) -> list[Axis]:
    """The grid axes of an arm override, depth-first in order of appearance.

    ``where`` prefixes error paths (``arm 'batch size'``). Raises ConfigError for an empty axis
    and for a list-natured field given a mix of lists and single values.
    """
    axes: list[Axis] = []

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            p = (*path, key)
            dotted = ".".join(p)
            if isinstance(value, Mapping):
                walk(value, p)
            elif isinstance(value, list):
                if is_list_natured(p, model_names):
                    nested = [isinstance(v, list) for v in value]
                    if value and all(nested):
                        axes.append((dotted, list(value)))
                    elif any(nested):
                        raise ConfigError(
                            "mixes lists and single values; write a list of lists for a grid "
                            "(e.g. [[64], [128, 64]]) or one flat list for a single value",
                            path=f"{where}.{dotted}",
                        )
                elif not value:
                    raise ConfigError("empty grid: a list here is a grid axis and needs at least one value",
                                      path=f"{where}.{dotted}")
                else:
                    axes.append((dotted, list(value)))

    walk(override, ())
    return axes


def grid_points(axes: Sequence[Axis], zip_: bool, where: str) -> list[dict[str, Any]]:
    """Combine axes into points (dotted key -> value): the cartesian product, first axis slowest,
    or with ``zip_`` the element-wise pairing of equal-length axes. No axes: one empty point."""
    if not axes:
        return [{}]
    keys = [k for k, _ in axes]
    if zip_:
        lengths = {k: len(v) for k, v in axes}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k} has {n}" for k, n in lengths.items())
            raise ConfigError(f"zip = true needs lists of equal length: {shown}", path=where)
        combos = zip(*(v for _, v in axes))
    else:
        combos = itertools.product(*(v for _, v in axes))
    return [dict(zip(keys, combo)) for combo in combos]


def apply_point(override: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """The arm override with each axis list replaced by this point's value."""
    out = copy.deepcopy(dict(override))
    for dotted, value in point.items():
        set_path(out, dotted, copy.deepcopy(value))
    return out


_MISSING = object()


def get_path(tree: Mapping[str, Any], dotted: str, default: Any = _MISSING) -> Any:
    """``tree[a][b]`` for ``"a.b"``; ``default`` (or KeyError) when absent."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(dotted)
            return default
        node = node[part]
    return node


def leaf_paths(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every non-table value in ``tree``, in order."""
    return list(flatten(tree, prefix))


# -- naming points ----------------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """A value as it reads in a label: TOML-like but unquoted (``adam``, ``0.1``, ``[128, 64]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def format_point(point: Mapping[str, Any]) -> str:
    """``optim.lr=0.1, optim.name=adam``."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in point.items())


def make_label(arm: str, point: Mapping[str, Any]) -> str:
    """``"arm: k=v, ..."`` for a grid point, just the arm name otherwise."""
    return f"{arm}: {format_point(point)}" if point else arm
