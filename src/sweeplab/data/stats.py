"""Small helpers shared by the loaders: normalisation statistics and checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch


def channel_stats(x: torch.Tensor | np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 NCHW images, in [0, 1] pixel units.

    Computed from a 256-bin histogram per channel: exact, and it never materialises a float copy
    of the images (a float32 copy of CIFAR-10's training set would be 600 MB).
    """
    arr = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise ValueError(f"need uint8 NCHW images, got {arr.dtype} of shape {arr.shape}")
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(arr.shape[1]):
        counts = np.bincount(arr[:, c].reshape(-1), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float((counts * levels).sum() / total) if total else 0.0
        var = float((counts * (levels - mean) ** 2).sum() / total) if total else 0.0
        means.append(mean)
        stds.append(_safe_std(var**0.5))
    return tuple(means), tuple(stds)


def feature_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and (population) std of an (N, D) float tensor."""
    xd = x.to(torch.float64)
    mean = xd.mean(0) if len(xd) else torch.zeros(xd.shape[1], dtype=torch.float64)
    std = xd.std(0, unbiased=False) if len(xd) else torch.ones(xd.shape[1], dtype=torch.float64)
    return tuple(float(v) for v in mean), tuple(_safe_std(float(v)) for v in std)


def _safe_std(s: float) -> float:
    # A constant channel/feature would divide by zero; leave it unscaled instead.
    return s if s > 1e-12 else 1.0


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_arrays(*arrays: torch.Tensor | np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of each array, in order (for data without a source file)."""
    h = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(a.numpy() if isinstance(a, torch.Tensor) else a)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()
