"""What the model registry holds for one model, and how options are read from a signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

#: What a model accepts: "image" = (C, H, W) float images; "tokens" = (L,) int64 token ids;
#: "any" = any float tensor, flattened (images and feature vectors).
InputKind = Literal["any", "image", "tokens"]

#: Options every model takes on top of its own; they are create_model's own parameters.
COMMON_OPTIONS = ("init", "init_std")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, accepted inputs, description and options with defaults.

    ``builder(input_shape, num_classes, **options)`` builds it. ``source_sha256`` is the hash of
    the source of a model registered at run time (from a notebook), part of its runs' identity;
    ``local`` says such a model exists in this process only (spawned workers do not have it).
    """

    builder: Callable[..., nn.Module]
    inputs: InputKind
    description: str
    options: dict[str, object]
    source_sha256: str | None = None
    local: bool = False


def _default(value: object) -> object:
    # Builders use tuples as immutable defaults; config files spell sequences as lists.
    return list(value) if isinstance(value, tuple) else value


def signature_options(builder: Callable[..., nn.Module]) -> dict[str, object]:
    """A built-in builder's keyword-only parameters, with their defaults: its options."""
    options: dict[str, object] = {}
    for param in inspect.signature(builder).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        # Options must be optional in config files, and init/init_std belong to create_model.
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"{builder.__qualname__}: option {param.name!r} has no default")
        if param.name in COMMON_OPTIONS:
            raise TypeError(f"{builder.__qualname__}: option {param.name!r} is reserved")
        options[param.name] = _default(param.default)
    return options
