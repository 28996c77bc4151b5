"""``batch_size = "max"``: the largest batch size that fits the device, capped.

On CUDA, found by trying: a forward/backward at doubling sizes until one runs out of memory.
On the CPU (where running out of memory means swapping or the OOM killer, not an exception) it
is computed from a memory budget: the activation bytes of one example, measured with forward
hooks, times a factor for the backward pass, plus the fixed cost of weights, gradients and
optimizer state.
"""

from __future__ import annotations

import torch

from sweeplab.config import RunConfig
from sweeplab.data import Dataset
from sweeplab.errors import ConfigError

#: Activations are kept for backward and their gradients are as large again; autograd's
#: temporaries add about as much. Measured peak/estimate on tutorial_cnn and resnet20 was < 3.
BACKWARD_FACTOR = 3.0


def activation_bytes_per_example(model: torch.nn.Module, ds: Dataset, device: torch.device) -> int:
    """Sum of every leaf module's output size for one example."""
    total = 0

    def hook(_m, _inp, out):
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        x = _dummy(ds, 2, device)
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return max(1, total // 2)


def _dummy(ds: Dataset, n: int, device: torch.device) -> torch.Tensor:
    if ds.kind == "sequence":
        return torch.zeros((n, *ds.input_shape), dtype=torch.int64, device=device)
    return torch.zeros((n, *ds.input_shape), dtype=torch.float32, device=device)


def _cap(cfg: RunConfig, ds: Dataset) -> int:
    return max(1, min(cfg.max_batch_size, len(ds.y_train)))


def cpu_max_batch_size(cfg: RunConfig, model: torch.nn.Module, ds: Dataset) -> int:
    """Largest power of two (or the cap) whose estimated training memory fits the budget."""
    budget = cfg.memory_budget_mb * 2**20
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    fixed = param_bytes * 4  # weights, gradients and up to two optimizer state tensors
    per_example = activation_bytes_per_example(model, ds, torch.device("cpu")) * BACKWARD_FACTOR
    per_example += _dummy(ds, 1, torch.device("cpu")).numel() * 4
    if fixed + per_example > budget:
        raise ConfigError(
            f"{cfg.memory_budget_mb} MiB cannot hold even one example of {cfg.model.name} "
            f"(needs about {(fixed + per_example) / 2**20:.0f} MiB)", path="memory_budget_mb",
        )
    fits = int((budget - fixed) // per_example)
    cap = _cap(cfg, ds)
    if fits >= cap:
        return cap
    return 1 << (fits.bit_length() - 1)


def cuda_max_batch_size(cfg: RunConfig, model: torch.nn.Module, ds: Dataset, device: torch.device) -> int:
    """Double the batch until a training step runs out of memory; keep the last that ran."""
    cap = _cap(cfg, ds)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best, bs = 0, 1
    try:
        while True:
            size = min(bs, cap)
            try:
                x = _dummy(ds, size, device)
                model.zero_grad(set_to_none=True)
                model(x).float().sum().backward()
                best = size
            except torch.cuda.OutOfMemoryError:
                break
            finally:
                model.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
            if size >= cap:
                break
            bs *= 2
    finally:
        model.load_state_dict(state)  # BatchNorm running stats moved during the probes
    if best == 0:
        raise ConfigError(f"not even batch size 1 of {cfg.model.name} fits on {device}", path="batch_size")
    return best


def find_max_batch_size(cfg: RunConfig, model: torch.nn.Module, ds: Dataset, device: torch.device) -> int:
    if device.type == "cuda":
        return cuda_max_batch_size(cfg, model, ds, device)
    return cpu_max_batch_size(cfg, model, ds)
