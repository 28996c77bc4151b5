"""``numpy_mlp``: a multilayer perceptron whose forward pass, backward pass and SGD are plain NumPy.

The reference implementation of a course's "write your own MLP" exercise, made runnable by the
same trainer, store and reports as every other model, so a study can put it beside PyTorch's
``mlp`` and show that the two learn the same thing (``toy-mlp-numpy-vs-torch``).

How it fits into torch without torch doing its arithmetic:

- **Weights** are NumPy arrays. Each is wrapped once as an ``nn.Parameter`` sharing its memory
  (``torch.from_numpy``), so ``state_dict``, checkpoints, parameter counts and ``load_state_dict``
  (which copies in place) work unchanged. NumPy views of the parameters are taken afresh at every
  use (``param.detach().numpy()``), so nothing goes stale if torch ever replaces a tensor.
- **Forward** is :class:`_NumpyMLPFunction`, a ``torch.autograd.Function``: the layer arithmetic
  runs in NumPy (through the ``sweeplab::numpy_mlp_forward`` operator, so that PyTorch's FLOP
  counter and profiler see it: ``summarize`` reports the same FLOPs as for ``mlp``).
- **Backward** receives dLoss/dlogits from torch's loss and computes the backward pass and every
  weight gradient in NumPy. It hands the weight gradients back to autograd, which stores them in
  the parameters' ``.grad``: that is where :class:`NumpySGD` reads them, so ``zero_grad``,
  gradient accumulation and ``clip_grad_norm_`` behave as for any model.
- **Update** is :class:`NumpySGD`, a ``torch.optim.Optimizer`` (the trainer sets ``lr`` in its
  ``param_groups`` and checkpoints its ``state_dict``) whose ``step`` is SGD with momentum,
  Nesterov momentum and L2 weight decay written in NumPy, in place on the weight arrays, with
  PyTorch's SGD update rule so that the two stay step-for-step equal. The model hands it to the
  trainer through ``build_optimizer``; any other optimizer is a ``ConfigError``.

Initialisation draws from torch's RNG exactly as ``nn.Linear`` does, in the same order as
``mlp``, so with the same seed (and any ``init`` scheme) ``numpy_mlp`` and ``mlp`` start from the
same weights. CPU and float arrays only: NumPy cannot reach an accelerator.
"""

# Size: over 400 lines on purpose: a reference implementation (forward, backward, SGD) meant to
# be read top to bottom as one file, as the course exercise it reproduces is.

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from sweeplab.errors import ConfigError
from sweeplab.models._common import check_choice, check_int_list



class OptimSettings(Protocol):
    """What ``NumpyMLP.build_optimizer`` reads of an optimizer config (the run's ``optim``)."""

    name: str
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool

# -- activations ---------------------------------------------------------------------------------
# Each: forward f(z) -> a, and backward (z, a, dL/da) -> dL/dz, with PyTorch's definitions
# (leaky_relu slope 0.01, exact erf GELU, swish = SiLU) so that numpy_mlp and mlp agree.

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _relu_grad(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return g * (z > 0)


# A Python float does not upcast a float32 array (NumPy 1.x and 2.x alike), as in torch.
def _leaky(z: np.ndarray) -> np.ndarray:
    return np.where(z > 0, z, z * 0.01)


def _leaky_grad(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.where(z > 0, g, g * 0.01)


def _tanh_grad(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return g * (1 - a * a)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only: no overflow for large |z|.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _swish(z: np.ndarray) -> np.ndarray:
    return z * _sigmoid(z)


def _swish_grad(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    s = _sigmoid(z)
    return g * (s * (1 + z * (1 - s)))


def _erf(z: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # NumPy has no erf; imported on first use (it costs ~0.3 s)

    return erf(z)


def _gelu(z: np.ndarray) -> np.ndarray:
    return z * (0.5 * (1 + _erf(z * _SQRT_HALF)))


def _gelu_grad(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    cdf = 0.5 * (1 + _erf(z * _SQRT_HALF))
    pdf = np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    return g * (cdf + z * pdf)


Forward = Callable[[np.ndarray], np.ndarray]
Backward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

#: The ``activation`` option: the same names as ``mlp``'s. ``none`` (None here) is a deep linear net.
ACTIVATIONS: dict[str, tuple[Forward, Backward] | None] = {
    "none": None,
    "relu": (lambda z: np.maximum(z, 0), _relu_grad),
    "swish": (_swish, _swish_grad),
    "leaky_relu": (_leaky, _leaky_grad),
    "tanh": (np.tanh, _tanh_grad),
    "gelu": (_gelu, _gelu_grad),
}


# -- the NumPy arithmetic ------------------------------------------------------------------------
def numpy_forward(
    x: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], activation: str
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Logits for the ``(N, D)`` batch ``x``, plus what the backward pass needs.

    Returns ``(logits, pre, post)``: ``pre[l]`` is hidden layer ``l``'s pre-activation ``z`` and
    ``post[l]`` its output ``a = f(z)`` (the same array as ``z`` for ``activation = "none"``).
    A layer is ``z = a_prev @ W.T + b`` with ``W`` of shape ``(out, in)``, as in ``nn.Linear``.
    """
    act = ACTIVATIONS[activation]
    a = x
    pre: list[np.ndarray] = []
    post: list[np.ndarray] = []
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = a @ w.T
        z += b
        if i == last:
            return z, pre, post
        a = z if act is None else act[0](z)
        pre.append(z)
        post.append(a)
    raise ValueError("an MLP needs at least one layer")


def numpy_backward(
    grad_logits: np.ndarray,
    x: np.ndarray,
    weights: Sequence[np.ndarray],
    pre: Sequence[np.ndarray],
    post: Sequence[np.ndarray],
    activation: str,
    need_input_grad: bool = False,
) -> tuple[np.ndarray | None, list[np.ndarray], list[np.ndarray]]:
    """Backpropagate dLoss/dlogits: returns ``(dx, dW per layer, db per layer)``.

    ``dx`` (shape of ``x``) is computed only when ``need_input_grad``; it is None otherwise.
    """
    act = ACTIVATIONS[activation]
    inputs = [x, *post]  # the input of layer l
    grad_w: list[np.ndarray] = [None] * len(weights)  # type: ignore[list-item]
    grad_b: list[np.ndarray] = [None] * len(weights)  # type: ignore[list-item]
    dz = grad_logits
    for i in range(len(weights) - 1, -1, -1):
        grad_w[i] = dz.T @ inputs[i]
        grad_b[i] = dz.sum(axis=0)
        if i == 0 and not need_input_grad:
            return None, grad_w, grad_b
        da = dz @ weights[i]
        if i == 0:
            return da, grad_w, grad_b
        dz = da if act is None else act[1](pre[i - 1], post[i - 1], da)
    raise ValueError("an MLP needs at least one layer")


# -- the forward pass as a PyTorch operator ------------------------------------------------------
# Registered so that tools that watch torch operators (FlopCounterMode in `summarize`, the
# profiler) see the NumPy forward; torch never differentiates it (_NumpyMLPFunction does).
# Outputs: [logits, z_1, a_1, ..., z_H, a_H], or [logits, z_1, ..., z_H] for activation "none"
# (an operator's outputs must not alias each other, and there a_l is z_l).


@torch.library.custom_op("sweeplab::numpy_mlp_forward", mutates_args=())
def _forward_op(x: torch.Tensor, params: list[torch.Tensor], activation: str) -> list[torch.Tensor]:
    weights = [p.numpy() for p in params[0::2]]
    biases = [p.numpy() for p in params[1::2]]
    flat = x.numpy().reshape(x.shape[0], -1).astype(weights[0].dtype, copy=False)
    logits, pre, post = numpy_forward(flat, weights, biases, activation)
    cache = pre if activation == "none" else [t for pair in zip(pre, post) for t in pair]
    return [torch.from_numpy(logits), *(torch.from_numpy(t) for t in cache)]


@_forward_op.register_fake
def _forward_op_shapes(x: torch.Tensor, params: list[torch.Tensor], activation: str) -> list[torch.Tensor]:
    weights = params[0::2]
    out = [x.new_empty(x.shape[0], weights[-1].shape[0], dtype=weights[-1].dtype)]
    for w in weights[:-1]:
        copies = 1 if activation == "none" else 2
        out += [x.new_empty(x.shape[0], w.shape[0], dtype=w.dtype) for _ in range(copies)]
    return out


def _forward_flops(x_shape: Sequence[int], param_shapes: Sequence[Sequence[int]], *args: Any,
                   **kwargs: Any) -> int:
    # As FlopCounterMode counts nn.Linear (addmm): 2 FLOPs per multiply-add, bias adds free.
    return sum(2 * x_shape[0] * out * fan_in for out, fan_in in param_shapes[0::2])


@functools.cache
def _register_flop_formula() -> None:
    # On first model creation rather than at import: the FLOP counter module is slow to import,
    # and every `sweeplab` command imports the model registry.
    from torch.utils.flop_counter import register_flop_formula

    register_flop_formula(torch.ops.sweeplab.numpy_mlp_forward)(_forward_flops)


class _NumpyMLPFunction(torch.autograd.Function):
    """The whole MLP as one autograd node: NumPy forward, NumPy backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, activation: str, *params: torch.Tensor) -> torch.Tensor:
        detached = [p.detach() for p in params]
        logits, *cache = torch.ops.sweeplab.numpy_mlp_forward(x.detach(), detached, activation)
        # NumPy views, not save_for_backward: the backward is NumPy, and the optimizer changes the
        # weight arrays in place without bumping torch's version counters anyway.
        pre = [c.numpy() for c in (cache if activation == "none" else cache[0::2])]
        post = pre if activation == "none" else [c.numpy() for c in cache[1::2]]
        ctx.arrays = (x.detach().numpy(), [p.numpy() for p in detached[0::2]], pre, post)
        ctx.activation = activation
        ctx.x_shape = x.shape
        return logits

    @staticmethod
    def backward(ctx: Any, grad_logits: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weights, pre, post = ctx.arrays
        flat = x.reshape(x.shape[0], -1).astype(weights[0].dtype, copy=False)
        need_x = ctx.needs_input_grad[0]
        g = grad_logits.detach().numpy().astype(weights[0].dtype, copy=False)
        dx, grad_w, grad_b = numpy_backward(g, flat, weights, pre, post, ctx.activation, need_x)
        grads: list[torch.Tensor | None] = [
            None if dx is None else torch.from_numpy(dx.astype(x.dtype, copy=False)).reshape(ctx.x_shape)
        ]
        grads.append(None)  # activation
        needs = ctx.needs_input_grad[2:]
        for i, (gw, gb) in enumerate(zip(grad_w, grad_b)):
            grads.append(torch.from_numpy(gw) if needs[2 * i] else None)
            grads.append(torch.from_numpy(gb) if needs[2 * i + 1] else None)
        return tuple(grads)


# -- the optimizer ---------------------------------------------------------------------------------
class NumpySGD(torch.optim.Optimizer):
    """SGD in NumPy on the parameters' memory, with ``torch.optim.SGD``'s update rule::

        g = grad + weight_decay * w
        buf = g (first step), else momentum * buf + g          (if momentum > 0)
        g = g + momentum * buf if nesterov else buf             (if momentum > 0)
        w -= lr * g

    ``lr`` is read from ``param_groups`` at every step (the trainer's schedule sets it there);
    parameters whose ``.grad`` is None (after ``zero_grad()``) are skipped, as in torch. The
    momentum buffers are tensors sharing memory with NumPy arrays, so ``state_dict`` checkpoints
    and restores them.
    """

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"bad SGD hyper-parameters lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and momentum <= 0:
            raise ValueError("nesterov needs momentum > 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "nesterov": nesterov})

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                w = _cpu_array(p)
                g = p.grad.detach().numpy()
                if weight_decay:
                    g = g + weight_decay * w
                if momentum:
                    state = self.state[p]
                    if state.get("momentum_buffer") is None:
                        state["momentum_buffer"] = torch.from_numpy(np.array(g, copy=True))
                        buf = state["momentum_buffer"].numpy()
                    else:
                        buf = state["momentum_buffer"].numpy()
                        buf *= momentum
                        buf += g
                    g = g + momentum * buf if nesterov else buf
                w -= lr * g
        return loss


_blas_threads: int | None = None


def _match_blas_threads() -> None:
    """Give NumPy's BLAS as many threads as torch has (``torch.get_num_threads()``).

    Runs set torch's thread count (``threads``, or the executor's share of the cores per worker);
    NumPy's BLAS has a pool of its own that would otherwise take every core. On a busy CPU an
    oversubscribed BLAS is 10-20x slower (measured: 0.7 ms vs 8-16 ms per 128x3072x64 product on
    2 cores), so the NumPy MLP keeps to the run's budget like every other model.
    """
    global _blas_threads
    threads = torch.get_num_threads()
    if threads == _blas_threads:
        return
    try:
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    except ImportError:
        pass
    else:
        threadpool_limits(limits=threads, user_api="blas")
    _blas_threads = threads


def _cpu_array(p: torch.Tensor) -> np.ndarray:
    """A NumPy view of ``p``'s memory (so writes to it change the parameter)."""
    if p.device.type != "cpu":
        raise RuntimeError(f"numpy_mlp computes in NumPy on the CPU, but a parameter is on {p.device}; "
                           "set device = \"cpu\"")
    return p.detach().numpy()


# -- the model -------------------------------------------------------------------------------------
class NumpyMLP(nn.Module):
    """Flatten, then ``Linear -> activation`` per hidden width and a Linear to the logits, in NumPy.

    Options (the same meaning as ``mlp``'s; no batchnorm or dropout):
        hidden: widths of the hidden layers; ``[]`` gives logistic regression.
        activation: one of ``none, relu, swish, leaky_relu, tanh, gelu``.

    Parameters are ``weight1, bias1, ..., weightL, biasL`` (layer 1 is the input layer), with
    ``nn.Linear``'s shapes: ``weight`` is ``(out, in)``. Trains only with :class:`NumpySGD`,
    which the trainer gets from :meth:`build_optimizer`.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        hidden: Sequence[int] = (110, 74),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        _register_flop_formula()
        hidden = check_int_list("hidden", hidden)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.widths = (math.prod(input_shape), *hidden, num_classes)
        for i, (fan_in, fan_out) in enumerate(zip(self.widths, self.widths[1:]), start=1):
            weight = torch.from_numpy(np.empty((fan_out, fan_in), dtype=np.float32))
            bias = torch.from_numpy(np.empty(fan_out, dtype=np.float32))
            # nn.Linear.reset_parameters, with the same torch RNG draws in the same order as mlp.
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            nn.init.uniform_(bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
            self.register_parameter(f"weight{i}", nn.Parameter(weight))
            self.register_parameter(f"bias{i}", nn.Parameter(bias))

    def arrays(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(W, b)`` per layer as NumPy arrays sharing the parameters' memory."""
        params = [_cpu_array(p) for p in self.parameters()]
        return list(zip(params[0::2], params[1::2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise RuntimeError(f"numpy_mlp computes in NumPy on the CPU, but its input is on {x.device}; "
                               "set device = \"cpu\"")
        params = list(self.parameters())
        for p in params:
            _cpu_array(p)  # a clear error for a model moved to an accelerator
        _match_blas_threads()
        return _NumpyMLPFunction.apply(x, self.activation, *params)

    def build_optimizer(self, cfg: OptimSettings) -> NumpySGD:
        """The trainer's optimizer for this model: NumPy SGD from ``cfg`` (only ``sgd`` exists)."""
        if cfg.name != "sgd":
            raise ConfigError(f"numpy_mlp trains with its own NumPy SGD; got {cfg.name!r} (allowed: sgd)",
                              path="optim.name")
        devices = {p.device for p in self.parameters()}
        if devices != {torch.device("cpu")}:
            raise ConfigError(f"numpy_mlp computes in NumPy on the CPU, not on {', '.join(map(str, devices))}; "
                              "set device = \"cpu\"", path="device")
        return NumpySGD(self.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                        nesterov=cfg.nesterov)

    def extra_repr(self) -> str:
        return f"{'-'.join(map(str, self.widths))}, activation={self.activation}, computed in NumPy"
