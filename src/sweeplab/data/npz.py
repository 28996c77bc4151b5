"""Keras-style ``.npz`` files: arrays ``x_train y_train x_test y_test`` (optionally ``classes``).

Inputs are interpreted by dtype and rank:

- uint8 (N, H, W) or (N, H, W, C) images, C <= 4 (also accepted: (N, C, H, W)) -> uint8 NCHW;
- floating (N, D) -> float32 features;
- integer (N, L) -> int64 token sequences, vocab_size = largest token + 1.

Labels may be (N,) or (N, 1) integers (Keras stores CIFAR labels as (N, 1)).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .stats import channel_stats, feature_stats, sha256_file
from .types import Dataset, Kind

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: Path, key: str = "data.path") -> Dataset:
    if not path.is_file():
        raise DataError(f"{path} is not a file", path=key)
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # .npz files are zip archives
            raise DataError(f"{path} is not a .npz file (np.savez output)", path=key)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path} lacks {', '.join(missing)} (has {', '.join(npz.files) or 'no arrays'}); "
                    f"need {' '.join(REQUIRED)}",
                    path=key,
                )
            arrays = {k: npz[k] for k in REQUIRED}
            classes = [str(c) for c in npz["classes"]] if "classes" in npz.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: cannot read as .npz ({exc})", path=key) from exc

    return from_arrays(arrays, classes, name=path.stem, what=str(path), key=key, source=str(path),
                       checksum=sha256_file(path))


def from_arrays(arrays: dict[str, np.ndarray], classes: list[str] | None, *, name: str, what: str, key: str,
                source: str, checksum: str) -> Dataset:
    """A :class:`Dataset` from Keras-layout arrays (see the module docstring); errors name ``what``."""
    for split in ("x_train", "x_test"):
        if len(arrays[split]) == 0:
            raise DataError(f"{what}: {split} is empty (0 examples)", path=key)
    kind, x_train = _inputs(arrays["x_train"], f"{what}: x_train", key)
    kind_test, x_test = _inputs(arrays["x_test"], f"{what}: x_test", key)
    if kind_test != kind or x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"{what}: x_test is {kind_test} {list(x_test.shape[1:])} but x_train is {kind} {list(x_train.shape[1:])}",
            path=key,
        )
    y_train = _labels(arrays["y_train"], len(x_train), f"{what}: y_train", key)
    y_test = _labels(arrays["y_test"], len(x_test), f"{what}: y_test", key)
    n_classes = int(max(y_train.max(initial=-1), y_test.max(initial=-1))) + 1
    if classes is None:
        classes = [str(i) for i in range(n_classes)]
    elif len(classes) < n_classes:
        raise DataError(f"{what}: {len(classes)} class names but labels go up to {n_classes - 1}", path=key)

    mean = std = None
    vocab = None
    if kind == "image":
        mean, std = channel_stats(x_train)
    elif kind == "features":
        mean, std = feature_stats(x_train)
    else:
        vocab = max((int(t.max()) for t in (x_train, x_test) if t.numel()), default=0) + 1
    return Dataset(
        name=name,
        kind=kind,
        x_train=x_train,
        y_train=torch.from_numpy(y_train),
        x_test=x_test,
        y_test=torch.from_numpy(y_test),
        classes=classes,
        mean=mean,
        std=std,
        source=source,
        checksum=checksum,
        vocab_size=vocab,
    )


def _inputs(a: np.ndarray, what: str, key: str) -> tuple[Kind, torch.Tensor]:
    if a.dtype == np.uint8 and a.ndim in (3, 4):
        if a.ndim == 3:
            a = a[:, None]
        elif a.shape[-1] <= 4:
            a = a.transpose(0, 3, 1, 2)  # NHWC -> NCHW
        elif a.shape[1] > 4:
            raise DataError(
                f"{what} has shape {list(a.shape)}: neither NHWC nor NCHW with at most 4 channels", path=key
            )
        return "image", torch.from_numpy(np.ascontiguousarray(a))
    if a.ndim == 2 and np.issubdtype(a.dtype, np.floating):
        return "features", torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    if a.ndim == 2 and np.issubdtype(a.dtype, np.integer):
        if a.size and a.min() < 0:
            raise DataError(f"{what}: token ids must be >= 0", path=key)
        return "sequence", torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))
    raise DataError(
        f"{what} is {a.dtype} of shape {list(a.shape)}; need uint8 images (N,H,W[,C]), "
        "float features (N,D) or integer sequences (N,L)",
        path=key,
    )


def _labels(a: np.ndarray, n: int, what: str, key: str) -> np.ndarray:
    y = a.reshape(-1) if a.ndim == 2 and a.shape[1] == 1 else a
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what} must be {n} integer labels, got {a.dtype} of shape {list(a.shape)}", path=key)
    if len(y) and y.min() < 0:
        raise DataError(f"{what}: labels must be >= 0", path=key)
    return np.ascontiguousarray(y, dtype=np.int64)
