"""Layer table, parameter counts and FLOPs of a model, from one forward pass on a dummy batch.

Used by ``sweeplab models`` and stored with runs, so that a study can report model size and
compute next to accuracy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sweeplab.models.flops import count_flops

from sweeplab.errors import ConfigError

# Two examples rather than one: with a batch of one, a model that squeezes or mixes up the batch
# dimension still produces plausible shapes. FLOPs are divided back to one example.
_BATCH = 2


@dataclass(frozen=True)
class ModelSummary:
    """What ``summarize`` measured.

    Attributes:
        rows: ``(name, type, output_shape, params)`` per leaf module in call order; output_shape
            is the module's (first) output tensor without the batch dimension.
        total_params: number of parameter elements.
        trainable_params: the ones with ``requires_grad``.
        flops_per_example: forward FLOPs for one example as counted by PyTorch's
            ``FlopCounterMode``: a multiply-add counts as 2 FLOPs, and only matrix products and
            convolutions are counted (not bias adds, activations, pooling, normalisation or the
            element-wise gate arithmetic of RNNs).
    """

    rows: list[tuple[str, str, tuple[int, ...], int]]
    total_params: int
    trainable_params: int
    flops_per_example: int

    def __str__(self) -> str:
        table = [("layer", "type", "output", "params")]
        table += [(n, t, "x".join(map(str, s)) or "-", f"{p:,}") for n, t, s, p in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines = [
            "  ".join(
                cell.rjust(w) if i == 3 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in table
        ]
        lines.append(
            f"params: {self.total_params:,} ({self.trainable_params:,} trainable); "
            f"forward FLOPs per example: {self.flops_per_example:,}"
        )
        return "\n".join(lines)


@contextmanager
def _native_kernels() -> Iterator[None]:
    """Turn off the cuDNN and oneDNN backends for the summary pass.

    Their fused RNN/LSTM kernels (``_cudnn_rnn``, ``mkldnn_rnn_layer``) are invisible to the FLOP
    counter, so a CPU LSTM would count as zero FLOPs; PyTorch's native path runs the same layers
    as matrix products that are counted, on any device. Convolution FLOPs are counted before the
    backend is chosen and do not change.
    """
    saved = torch.backends.cudnn.enabled, torch.backends.mkldnn.enabled
    torch.backends.cudnn.enabled = torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.cudnn.enabled, torch.backends.mkldnn.enabled = saved


def summarize(
    model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype | None = None
) -> ModelSummary:
    """Run ``model`` once on a zero batch of shape ``(2, *input_shape)`` and summarise it.

    ``dtype`` is the input's dtype; by default the model's ``input_dtype`` attribute when it has
    one (int64 token ids for sequence models), else float32. The model is run in eval mode under
    ``no_grad`` and its train/eval flags are restored afterwards, so BatchNorm running statistics
    are not touched. Zeros rather than random inputs keep the global RNG untouched.
    """
    if dtype is None:
        dtype = getattr(model, "input_dtype", torch.float32)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros((_BATCH, *input_shape), dtype=dtype, device=device)

    rows: list[tuple[str, str, tuple[int, ...], int]] = []

    def record(name: str, module: nn.Module, output: object) -> None:
        while isinstance(output, tuple | list):  # RNN/LSTM return (output, state)
            output = output[0]
        shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else ()
        params = sum(p.numel() for p in module.parameters())
        rows.append((name or type(module).__name__, type(module).__name__, shape, params))

    leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]
    handles = [
        module.register_forward_hook(lambda m, _inputs, out, name=name: record(name, m, out))
        for name, module in leaves
    ]
    training = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), _native_kernels():
            flops = count_flops(model, x)  # FlopCounterMode's numbers without its ~2 s start (flops.py)
            for handle in handles:
                handle.remove()
            if flops is None:  # matrix work the fast counter does not know (RNNs, attention, ...)
                with FlopCounterMode(display=False) as counter:
                    model(x)
                flops = counter.get_total_flops()
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.training = flag

    return ModelSummary(
        rows=rows,
        total_params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        flops_per_example=flops // _BATCH,
    )


def available_memory() -> int | None:
    """Bytes of memory the system can still give (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def model_bytes(factory: Callable[[], nn.Module]) -> tuple[int, int] | None:
    """``(parameters, bytes)`` of the model ``factory`` builds, from shapes only (meta tensors).

    Nothing is allocated; None when the model cannot be built on the meta device.
    """
    try:
        with torch.device("meta"):
            net = factory()
        tensors = [*net.parameters(), *net.buffers()]
    except Exception:  # a model that needs real tensors to be built: not checked here
        return None
    return (sum(p.numel() for p in net.parameters()),
            sum(t.numel() * t.element_size() for t in tensors))


def _is_oom(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                           or "not enough memory" in text))


def summarize_new(factory: Callable[[], nn.Module], input_shape: tuple[int, ...], what: str) -> ModelSummary:
    """Build a model with ``factory`` and summarise it; too big for memory is a one-line error.

    The size is checked from shapes before anything is allocated (a model that does not fit
    would otherwise be created lazily and then touched page by page until the OOM killer ends
    the process); an allocation that still fails is reported the same way.
    """
    sized, free = model_bytes(factory), available_memory()
    if sized is not None and free is not None and sized[1] > free:
        raise ConfigError(f"out of memory: {what} has {sized[0]:,} parameters ({sized[1] / 2**30:,.1f} GiB), "
                          f"more than the {free / 2**30:,.1f} GiB of memory available", path="model")
    try:
        return summarize(factory(), input_shape)
    except (MemoryError, RuntimeError) as err:
        if not _is_oom(err):
            raise
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(f"out of memory: {what} does not fit in memory ({first})", path="model") from None
