"""Device selection, memory measurement and the environment recorded with every run."""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import platform
import resource
import socket
import subprocess
import sys
from pathlib import Path

import torch

from sweeplab.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{name!r} asked for, but no CUDA device is available (use auto or cpu)", path="device")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{name!r}: only {torch.cuda.device_count()} CUDA device(s)", path="device")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("'mps' asked for, but MPS is not available (use auto or cpu)", path="device")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """GPU name, or the CPU model, for reports."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: max allocated since the last reset. Otherwise the process's peak RSS (never resets)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20  # Linux reports KiB, macOS bytes


@functools.cache
def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one.

    Asked once per process (a ``git`` subprocess): the code a process runs is the code it
    imported, so later edits of the tree do not change it, and a worker's runs do not each pay it.
    """
    from sweeplab import __version__

    try:
        root = Path(__file__).resolve().parents[3]
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def environment(device: torch.device) -> dict[str, str]:
    """What is needed to redo a run: code and library versions, device, host."""
    env = dict(_environment())
    return {**{k: env.pop(k) for k in ("sweeplab", "python", "torch", "torchvision", "numpy")},
            "device": device_name(device), **env}


@functools.cache
def _environment() -> dict[str, str]:
    import numpy

    return {
        "sweeplab": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _torchvision_version(),
        "numpy": numpy.__version__,
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


def _torchvision_version() -> str:
    """``torchvision.__version__`` (``0.29.1+cu130``) without importing torchvision (~0.5-1 s),
    which a run from the data cache does not otherwise need: read from its ``version.py``."""
    module = sys.modules.get("torchvision")
    if module is None:
        try:
            spec = importlib.util.find_spec("torchvision")  # finds, does not import, a top-level package
            source = Path(spec.origin).with_name("version.py").read_text(encoding="utf-8")
            for node in ast.parse(source).body:
                if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                        and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)):
                    return str(node.value.value)
        except (AttributeError, TypeError, OSError, SyntaxError, ValueError):
            pass
        import torchvision as module
    return module.__version__


#: Below this much work per training step (batch x FLOPs per example) a CPU run uses one thread.
#: Measured with benchmarks/cifar_throughput.py on 2 cores: tutorial_cnn at batch 4 (5 MFLOP per
#: step) runs as fast on one thread as on two when the machine is quiet, and several times faster
#: when the other core is busy (another worker, the OS); at batch 64 (85 MFLOP) two threads win.
SINGLE_THREAD_FLOPS = 32e6

#: Below this many forward FLOPs per training step a CPU run trains with PyTorch's native (NCHW)
#: convolution kernels instead of oneDNN's, whose per-call set-up dominates such tiny steps.
#: Measured (1 s of steps each, median of 3, fused SGD): tutorial_cnn at batch 1 (1.3 MFLOP)
#: 1.4x faster, at batch 4 (5 MFLOP) 1.13-1.28x on one thread; simple_cnn at batch 4 1.05x; at
#: batch 8 (10 MFLOP) native is 0.8x and at batch 32 0.4-0.5x, resnet20 at batch 1 (82 MFLOP) a tie.
NATIVE_CONV_FLOPS = 6e6


def cpu_threads(flops_per_step: float) -> int:
    """Threads for a CPU run whose config leaves ``threads`` unset: one for small steps, else
    the process's budget (``SWEEPLAB_THREADS``, set by executors that split the cores between
    workers; otherwise torch's default for this machine)."""
    if flops_per_step < SINGLE_THREAD_FLOPS:
        return 1
    budget = os.environ.get("SWEEPLAB_THREADS")
    return int(budget) if budget and budget.isdigit() and int(budget) > 0 else _TORCH_DEFAULT_THREADS


_TORCH_DEFAULT_THREADS = torch.get_num_threads()
