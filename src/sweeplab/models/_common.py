"""Pieces shared by the model families: option checks, activations, spatial-size arithmetic.

Model options come from study files, so a bad value must fail as a one-line ``ConfigError`` that
names the option (``model.<option>``), the value and what is allowed, not as a shape error deep in
PyTorch. Every model constructor runs its options through the ``check_*`` helpers below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn, TypeVar

from torch import nn

from sweeplab.errors import ConfigError

T = TypeVar("T")

#: Activation names accepted by the ``activation`` option. "none" gives a deep *linear* network,
#: which is a useful baseline in ablations; "swish" is SiLU.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "swish": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def _fail(option: str, value: object, allowed: str) -> NoReturn:
    raise ConfigError(f"got {value!r}; allowed: {allowed}", path=f"model.{option}")


def _is_int(value: object) -> bool:
    # bool is a subclass of int, but `hidden = [true]` is a typo, not a width of 1.
    return isinstance(value, int) and not isinstance(value, bool)


def check_choice(option: str, value: object, choices: Iterable[T]) -> T:
    """One of ``choices``, of the same type (so ``11.0`` or ``True`` is not taken for an int)."""
    choices = list(choices)
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return choice
    _fail(option, value, "one of " + ", ".join(str(c) for c in choices))


def check_activation(value: object) -> Callable[[], nn.Module]:
    """Validate the ``activation`` option and return a factory making a fresh module per layer."""
    return ACTIVATIONS[check_choice("activation", value, ACTIVATIONS)]


def check_bool(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        _fail(option, value, "true or false")
    return value


def check_int(option: str, value: object, *, min_value: int) -> int:
    if not _is_int(value) or value < min_value:
        _fail(option, value, f"an integer >= {min_value}")
    return value


def check_int_list(option: str, value: object, *, min_value: int = 1) -> tuple[int, ...]:
    """A list of integers, each >= ``min_value``; an empty list is allowed."""
    # A string is a Sequence too, but "abc" is never a list of layer widths.
    if (
        isinstance(value, str | bytes)
        or not isinstance(value, Sequence)
        or not all(_is_int(v) and v >= min_value for v in value)
    ):
        _fail(option, value, f"a list of integers >= {min_value}")
    return tuple(value)


def check_fraction(option: str, value: object) -> float:
    """A probability in [0, 1): 1 would drop every unit."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
        _fail(option, value, "a number in [0, 1)")
    return float(value)


def check_positive_float(option: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        _fail(option, value, "a number > 0")
    return float(value)


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one spatial dimension."""
    return (size + 2 * padding - kernel) // stride + 1


def can_pool(height: int, width: int) -> bool:
    """Whether a 2x2 max-pool still fits; models skip pooling below this so tiny inputs work."""
    return min(height, width) >= 2
