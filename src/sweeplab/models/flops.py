"""Forward FLOPs as PyTorch's ``FlopCounterMode`` counts them, without its start-up cost.

``FlopCounterMode`` is a dispatch mode whose first use imports ``torch._dynamo`` (about 2 s, in
every process that builds a model). Most models here spend their FLOPs in a handful of
functions, convolutions, linear layers and matrix products, so :func:`count_flops` watches the
forward pass at the Python function level (a ``TorchFunctionMode``, no compiler stack) and
counts those with the same formulas (``torch.utils.flop_counter``): 2 FLOPs per multiply-add,
nothing for elementwise work, bias additions, normalisation or pooling.

Anything else that does matrix work (recurrent layers, attention, einsum, transposed
convolutions, autograd Functions) makes it answer ``None``, and the caller counts with
``FlopCounterMode`` itself. ``tests/test_models.py`` checks both agree on every model in the zoo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import conv_flop_count


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


def _conv(args: tuple, kwargs: dict, out: Any) -> int:
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    return conv_flop_count(list(_shape(x)), list(_shape(w)), list(_shape(out)), transposed=False)


def _linear(args: tuple, kwargs: dict, out: Any) -> int:
    w = args[1] if len(args) > 1 else kwargs["weight"]
    return 2 * out.numel() * w.shape[-1]  # (..., in) @ (in, out): out elements x in multiply-adds


def _matmul(a: Any, b: Any, out: Any) -> int | None:
    if a.dim() < 2 or b.dim() < 2:
        return None  # vector products are mv/dot, which FlopCounterMode does not count: ask it
    return 2 * out.numel() * a.shape[-1]


def _two(args: tuple, kwargs: dict, out: Any) -> int | None:
    return _matmul(args[0], args[1], out)


def _addmm(args: tuple, kwargs: dict, out: Any) -> int | None:
    return _matmul(args[1], args[2], out)  # addmm(bias, mat1, mat2): the bias add is not counted


_RULES: dict[Callable[..., Any], Callable[[tuple, dict, Any], int | None]] = {
    F.conv1d: _conv, F.conv2d: _conv, F.conv3d: _conv,
    F.linear: _linear,
    torch.matmul: _two, torch.Tensor.matmul: _two, torch.Tensor.__matmul__: _two,
    torch.mm: _two, torch.Tensor.mm: _two, torch.bmm: _two, torch.Tensor.bmm: _two,
    torch.addmm: _addmm, torch.Tensor.addmm: _addmm,
}

#: Functions with matrix work this module does not count: seeing one means "ask FlopCounterMode".
_UNCOUNTED = {
    F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, F.bilinear, F.scaled_dot_product_attention,
    F.multi_head_attention_forward, torch.einsum, torch.tensordot, torch.baddbmm, torch.addbmm,
    torch.chain_matmul, torch.Tensor.__rmatmul__, torch.Tensor.baddbmm, torch.Tensor.addbmm,
}
_UNCOUNTED_NAMES = {"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
                    "rnn_relu_cell", "apply", "conv_tbc", "_convolution", "convolution"}


class _Counter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.flops = 0
        self.unknown = False

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = _RULES.get(func)
        if rule is not None:
            n = rule(args, kwargs, out)
            if n is None:
                self.unknown = True
            else:
                self.flops += int(n)
        elif (func in _UNCOUNTED or getattr(func, "__name__", "") in _UNCOUNTED_NAMES
              or isinstance(func, (torch._ops.OpOverload, torch._ops.OpOverloadPacket))):
            self.unknown = True  # custom operators (numpy_mlp's) may carry their own flop formula
        return out


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int | None:
    """Forward FLOPs of ``model(x)`` as ``FlopCounterMode`` would count them, or None when the
    forward does matrix work this counter does not know (then count with ``FlopCounterMode``)."""
    counter = _Counter()
    with counter:
        model(x)
    return None if counter.unknown else counter.flops

