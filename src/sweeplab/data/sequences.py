"""Synthetic sequence tasks for sequence models (RNN, attention), generated from a seed.

``palindrome``: every sequence of ``seq_length`` digits reads the same backwards; the model sees
the first L-1 digits and predicts the last one, which equals the first. Trivial for a model that
can carry information across the whole sequence, impossible for one that cannot: a test of memory
length. Train and test are drawn from separate random streams of ``random_state``; they may share
a few sequences when 10^ceil(L/2) is not much larger than their sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config.schema import DataConfig
from .stats import sha256_arrays
from .types import Dataset

_MASK64 = (1 << 64) - 1


def palindromes(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random digit palindromes of ``length``, int64 (n, length)."""
    half = rng.integers(0, 10, size=(n, (length + 1) // 2), dtype=np.int64)
    # Mirror the first floor(L/2) digits; for odd L the middle digit stays single.
    return np.concatenate([half, half[:, : length // 2][:, ::-1]], axis=1)


def load_palindrome(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
    seed = cfg.random_state & _MASK64  # numpy seeds must be non-negative
    streams = {split: np.random.default_rng([seed, stream]) for stream, split in enumerate(("train", "test"))}
    seqs = {
        "train": palindromes(cfg.train_size, cfg.seq_length, streams["train"]),
        "test": palindromes(cfg.test_size, cfg.seq_length, streams["test"]),
    }
    t = {f"x_{s}": torch.from_numpy(np.ascontiguousarray(v[:, :-1])) for s, v in seqs.items()}
    t.update({f"y_{s}": torch.from_numpy(np.ascontiguousarray(v[:, -1])) for s, v in seqs.items()})
    return Dataset(
        name="palindrome",
        kind="sequence",
        classes=[str(d) for d in range(10)],
        vocab_size=10,
        source=(
            f"generated palindromes (seq_length={cfg.seq_length}, train_size={cfg.train_size}, "
            f"test_size={cfg.test_size}, random_state={cfg.random_state})"
        ),
        checksum=sha256_arrays(t["x_train"], t["y_train"], t["x_test"], t["y_test"]),
        **t,
    )
