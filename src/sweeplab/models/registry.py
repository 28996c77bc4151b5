"""The model registry: one plain dict from name to builder, and the factory that uses it.

A builder is any callable ``builder(input_shape, num_classes, **options) -> nn.Module`` (usually
the model class). Its keyword-only parameters, with their defaults, *are* the model's options:
``model_options`` reads them from the signature, so options are declared in exactly one place.
Every model also takes ``init`` and ``init_std``, handled here (see ``sweeplab.models.init``).

Adding a model is one ``register(...)`` line at the bottom of this file (plus its import).
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from sweeplab.errors import ConfigError
from sweeplab.models import blocknet, mlp, numpy_mlp, recurrent, resnet, small_cnn, vgg
from sweeplab.models.init import check_init, init_weights

#: What a model accepts: "image" = (C, H, W) float images; "tokens" = (L,) int64 token ids;
#: "any" = any float tensor, flattened (images and feature vectors).
InputKind = Literal["any", "image", "tokens"]

#: Rank of input_shape (None: any) and a description, per input kind.
_INPUT_KINDS: dict[InputKind, tuple[int | None, str]] = {
    "any": (None, "any input"),
    "image": (3, "images (C, H, W)"),
    "tokens": (1, "token sequences (L,)"),
}

#: Options every model takes on top of its own; they are create_model's own parameters.
COMMON_OPTIONS = ("init", "init_std")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, accepted inputs, description and options with defaults."""

    builder: Callable[..., nn.Module]
    inputs: InputKind
    description: str
    options: dict[str, object]


MODELS: dict[str, ModelEntry] = {}


def _signature_options(builder: Callable[..., nn.Module]) -> dict[str, object]:
    options: dict[str, object] = {}
    for param in inspect.signature(builder).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        # Options must be optional in config files, and init/init_std belong to create_model.
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"{builder.__qualname__}: option {param.name!r} has no default")
        if param.name in COMMON_OPTIONS:
            raise TypeError(f"{builder.__qualname__}: option {param.name!r} is reserved")
        default = param.default
        # Builders use tuples as immutable defaults; config files spell sequences as lists.
        options[param.name] = list(default) if isinstance(default, tuple) else default
    return options


def register(
    name: str, builder: Callable[..., nn.Module], inputs: InputKind, description: str
) -> None:
    """Add a model under ``name``; a name can be registered only once."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = ModelEntry(builder, inputs, description, _signature_options(builder))


def _entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ConfigError(
            f"unknown model {name!r} (available: {', '.join(MODELS)})", path="model.name"
        )
    return MODELS[name]


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description, in registration order."""
    return {name: entry.description for name, entry in MODELS.items()}


def model_options(name: str) -> dict[str, object]:
    """The model's own options with their defaults (sequence defaults as lists).

    ``init`` and ``init_std`` (``COMMON_OPTIONS``), which every model takes, are not included:
    the config schema has them as fields of their own. Returns a fresh dict each call.
    """
    return {k: list(v) if isinstance(v, list) else v for k, v in _entry(name).options.items()}


def create_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    init: str = "default",
    init_std: float = 0.01,
    **kwargs: object,
) -> nn.Module:
    """Build model ``name`` for inputs of ``input_shape`` (no batch dim) and ``num_classes``.

    ``kwargs`` are the model's own options (see ``model_options``). Unknown names, unknown options,
    bad option values and inputs the model cannot take raise ``ConfigError`` with the path of
    the offending ``model.*`` key. Weights are initialised with scheme ``init``.
    """
    entry = _entry(name)
    for key in kwargs:
        if key not in entry.options:
            allowed = ", ".join([*entry.options, *COMMON_OPTIONS])
            raise ConfigError(
                f"unknown option {key!r} for model {name!r} (allowed: {allowed})",
                path=f"model.{key}",
            )
    init, init_std = check_init(init, init_std)
    # operator.index: dataset metadata may hold numpy ints, but never a float like 3.0.
    input_shape = tuple(operator.index(d) for d in input_shape)
    num_classes = operator.index(num_classes)
    if not input_shape or min(input_shape) < 1 or num_classes < 1:
        raise ValueError(f"bad input_shape {input_shape} or num_classes {num_classes}")
    rank, kind = _INPUT_KINDS[entry.inputs]
    if rank is not None and len(input_shape) != rank:
        # The model does not fit the dataset; "model.name" is the key to change.
        raise ConfigError(
            f"model {name!r} takes {kind}, but the data has input shape {input_shape}",
            path="model.name",
        )

    model = entry.builder(input_shape, num_classes, **kwargs)
    init_weights(model, init, init_std)
    return model


# Each line: name, builder, accepted inputs, one-line description.
register("linear", mlp.LinearClassifier, "any", "flatten + one Linear layer (logistic regression)")
register("mlp", mlp.MLP, "any", "multi-layer perceptron, optional BatchNorm and dropout")
register("numpy_mlp", numpy_mlp.NumpyMLP, "any", "MLP in plain NumPy: forward, backward and SGD (reference)")
register("tutorial_cnn", small_cnn.TutorialCNN, "image", "PyTorch CIFAR-10 tutorial CNN")
register("simple_cnn", small_cnn.SimpleCNN, "image", "LeNet-style CNN, 5x5 + 3x3 convs")
register("vgg", vgg.VGG, "image", "VGG-11/13/16/19 for small images, optional BatchNorm")
register("resnet20", resnet.resnet20, "image", "CIFAR ResNet-20, He et al. 2016 (0.27M params)")
register("resnet32", resnet.resnet32, "image", "CIFAR ResNet-32, He et al. 2016 (0.46M params)")
register("resnet44", resnet.resnet44, "image", "CIFAR ResNet-44, He et al. 2016 (0.66M params)")
register("resnet56", resnet.resnet56, "image", "CIFAR ResNet-56, He et al. 2016 (0.85M params)")
register("resnet110", resnet.resnet110, "image", "CIFAR ResNet-110, He et al. 2016 (1.7M params)")
register("blocknet", blocknet.BlockNet, "image", "conv branches mixed by input-dependent weights")
register("rnn", recurrent.RNNClassifier, "tokens", "vanilla tanh RNN classifier over token ids")
register("lstm", recurrent.LSTMClassifier, "tokens", "LSTM classifier over token ids")


#: Stand-in input shapes for :func:`probe_options`, one per input kind.
_PROBE_SHAPES: dict[InputKind, tuple[int, ...]] = {"any": (64,), "image": (3, 32, 32), "tokens": (10,)}


def probe_options(name: str, options: dict[str, object]) -> None:
    """Build ``name`` with ``options`` on the meta device (no memory, no compute) for a stand-in
    input, so that bad option values raise their ``ConfigError`` before any run starts. Other
    errors (the stand-in shape may not suit every option) are left to the run, which knows the
    dataset's real shape."""
    import torch

    entry = _entry(name)
    try:
        with torch.device("meta"):
            entry.builder(_PROBE_SHAPES[entry.inputs], 10, **options)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - see the docstring: not an option error
        return
