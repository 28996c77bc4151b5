"""Device selection, memory measurement and the environment recorded with every run."""

from __future__ import annotations

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


def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
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
    import numpy

    import torchvision

    return {
        "sweeplab": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "device": device_name(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }
