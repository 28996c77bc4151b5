"""The model registry: one plain dict from name to builder, and the factory that uses it.

A builder is any callable ``builder(input_shape, num_classes, **options) -> nn.Module`` (usually
the model class). Its keyword-only parameters, with their defaults, *are* the model's options:
``model_options`` reads them from the signature, so options are declared in exactly one place.
Every model also takes ``init`` and ``init_std``, handled here (see ``sweeplab.models.init``).

Adding a model is one ``register(...)`` line at the bottom of this file (plus its import).
The user's own models come in two ways (see ``sweeplab.models.user``): a name such as
``"nets.py:CoolNet"`` found in the run's code files, or ``@register_model`` in a notebook.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from sweeplab.errors import ConfigError
from sweeplab.models import blocknet, mlp, numpy_mlp, recurrent, resnet, small_cnn, vgg
from sweeplab.models.entry import COMMON_OPTIONS, InputKind, ModelEntry, signature_options
from sweeplab.models.init import check_init, init_weights
from sweeplab.usercode import parse_ref

#: Rank of input_shape (None: any) and a description, per input kind.
_INPUT_KINDS: dict[InputKind, tuple[int | None, str]] = {
    "any": (None, "any input"),
    "image": (3, "images (C, H, W)"),
    "tokens": (1, "token sequences (L,)"),
}

MODELS: dict[str, ModelEntry] = {}


def register(
    name: str, builder: Callable[..., nn.Module], inputs: InputKind, description: str
) -> None:
    """Add a built-in model under ``name``; a name can be registered only once."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = ModelEntry(builder, inputs, description, signature_options(builder))


def register_model(name: str, inputs: InputKind = "any", description: str | None = None):
    """Decorator: make the user's ``nn.Module`` class or builder function model ``name``.

    ``@sweeplab.register_model("coolnet", inputs="image")``. Options are the parameters with
    defaults; ``input_shape`` and ``num_classes`` are passed when the signature names them.
    The model exists in this process only: a study that uses it trains in one in-process worker
    (name it as ``"nets.py:CoolNet"`` in a study file to train it in parallel workers).
    Registering a name again replaces the earlier one (a re-run notebook cell); built-in names
    cannot be taken.
    """
    from .user import make_entry, source_hash

    if callable(inputs) or callable(description):
        raise ConfigError("register_model(name) is a decorator: write @register_model(name) above the class, "
                          "or register_model(name)(builder)")
    if not isinstance(name, str) or parse_ref(name) is not None or ":" in name or not name.strip():
        raise ConfigError(f"register_model: {name!r} is not a model name (use letters, digits, _ and -)")
    if name in MODELS and not MODELS[name].local:
        raise ConfigError(f"register_model: {name!r} is a built-in model; choose another name")
    if inputs not in _INPUT_KINDS:
        raise ConfigError(f"register_model: inputs={inputs!r}; allowed: {', '.join(_INPUT_KINDS)}")

    def decorate(obj):
        entry = make_entry(obj, name, inputs, local=True, source_sha256=source_hash(obj))
        if description:
            entry = ModelEntry(entry.builder, inputs, description, entry.options, entry.source_sha256, True)
        MODELS[name] = entry
        return obj

    return decorate


def _entry(name: str, code: Mapping[str, Any] | None = None) -> ModelEntry:
    if parse_ref(name) is not None:
        from .user import file_entry

        return file_entry(name, code or {})
    if name not in MODELS:
        raise ConfigError(
            f"unknown model {name!r} (available: {', '.join(MODELS)})", path="model.name"
        )
    return MODELS[name]


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description, in registration order."""
    return {name: entry.description for name, entry in MODELS.items()}


def describe(name: str, code: Mapping[str, Any] | None = None) -> str:
    """The model's one-line description (a user model's: its docstring's first line)."""
    return _entry(name, code).description


def model_options(name: str, code: Mapping[str, Any] | None = None) -> dict[str, object]:
    """The model's own options with their defaults (sequence defaults as lists).

    ``init`` and ``init_std`` (``COMMON_OPTIONS``), which every model takes, are not included:
    the config schema has them as fields of their own. Returns a fresh dict each call.
    """
    return {k: list(v) if isinstance(v, list) else v for k, v in _entry(name, code).options.items()}


def model_identity(name: str, code: Mapping[str, Any] | None = None) -> dict[str, object]:
    """What a run's identity adds for its model: the options' defaults (so leaving one out and
    writing its default are one run) and, for a model registered at run time, its source hash."""
    entry = _entry(name, code)
    out = model_options(name, code)
    if entry.local:
        out["source_sha256"] = entry.source_sha256
    return out


def is_local(name: str) -> bool:
    """True for a model registered at run time (a notebook's): spawned workers do not have it."""
    return name in MODELS and MODELS[name].local


def create_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    init: str = "default",
    init_std: float = 0.01,
    code: Mapping[str, Any] | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build model ``name`` for inputs of ``input_shape`` (no batch dim) and ``num_classes``.

    ``kwargs`` are the model's own options (see ``model_options``). Unknown names, unknown options,
    bad option values and inputs the model cannot take raise ``ConfigError`` with the path of
    the offending ``model.*`` key. Weights are initialised with scheme ``init``. ``code`` is the
    run's code files, where a name like ``"nets.py:CoolNet"`` is found.
    """
    entry = _entry(name, code)
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
    _materialize(model, input_shape, entry.inputs)
    init_weights(model, init, init_std)
    return model


def _materialize(model: nn.Module, input_shape: tuple[int, ...], inputs: InputKind) -> None:
    """Give lazy layers (``nn.LazyLinear``, a student's LazyNet) their shapes with one dry batch
    of zeros, so parameter counts, initialisation, optimizers and checkpoints see real tensors."""
    import torch
    from torch.nn.modules.lazy import LazyModuleMixin

    if not any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules()):
        return
    dtype = torch.long if inputs == "tokens" else torch.float32
    was_training = model.training
    model.eval()  # BatchNorm statistics stay untouched
    try:
        with torch.no_grad():
            model(torch.zeros((2, *input_shape), dtype=dtype))
    except Exception as e:  # noqa: BLE001 - the same forward fails in training; say it here, once
        raise ConfigError(f"{type(model).__name__}: the dry batch that sizes its lazy layers failed on input "
                          f"{tuple(input_shape)}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                          path="model.name") from None
    finally:
        model.train(was_training)


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


def probe_options(name: str, options: dict[str, object], code: Mapping[str, Any] | None = None) -> None:
    """Build ``name`` with ``options`` on the meta device (no memory, no compute) for a stand-in
    input, so that bad option values raise their ``ConfigError`` before any run starts. Other
    errors (the stand-in shape may not suit every option) are left to the run, which knows the
    dataset's real shape."""
    import torch

    entry = _entry(name, code)
    if entry.local or parse_ref(name) is not None:
        return  # the user's models are built for the real data before training (train.preflight)
    try:
        with torch.device("meta"):
            entry.builder(_PROBE_SHAPES[entry.inputs], 10, **options)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - see the docstring: not an option error
        return
