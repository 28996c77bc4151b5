"""The one in-memory form every dataset takes: plain CPU tensors plus the metadata a run records.

Loaders in this package return a :class:`Dataset`; nothing downstream (loader, trainer, report)
needs to know whether the pixels came from torchvision, a tar of JPEGs or scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

Kind = Literal["image", "features", "sequence"]

# What each kind stores, checked at construction so a loader bug fails where it happens rather
# than as a shape error three modules later.
_X_DTYPE: dict[str, torch.dtype] = {"image": torch.uint8, "features": torch.float32, "sequence": torch.int64}
_X_RANK: dict[str, int] = {"image": 4, "features": 2, "sequence": 2}


@dataclass
class Dataset:
    """A dataset held as CPU tensors.

    Images are uint8 NCHW, features float32 (N, D), sequences int64 (N, L); labels are int64 (N,).
    ``mean``/``std`` are per channel in [0, 1] pixel units for images, per feature for features,
    ``None`` where normalisation makes no sense (sequences).
    """

    name: str
    kind: Kind
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: str = ""
    """Human-readable origin: a path, ``torchvision CIFAR10 at ./data``, ``sklearn...``."""
    checksum: str = ""
    """sha256 of the source file/archive, or of the arrays for generated and torchvision data."""
    vocab_size: int | None = None
    """Sequences: number of distinct tokens (token ids are 0..vocab_size-1)."""
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    notes: tuple[str, ...] = ()
    """What loading changed from what the config asked (a subset clamped to the examples that exist)."""

    def __post_init__(self) -> None:
        if self.kind not in _X_DTYPE:
            raise ValueError(f"kind must be one of {sorted(_X_DTYPE)}, got {self.kind!r}")
        splits = [("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)]
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError("x_val and y_val must be given together")
        if self.x_val is not None:
            splits.append(("val", self.x_val, self.y_val))
        for split, x, y in splits:
            if x.dtype != _X_DTYPE[self.kind] or x.dim() != _X_RANK[self.kind]:
                raise ValueError(
                    f"{self.name} x_{split}: {self.kind} data must be {_X_DTYPE[self.kind]} of rank "
                    f"{_X_RANK[self.kind]}, got {x.dtype} of shape {tuple(x.shape)}"
                )
            if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
                raise ValueError(
                    f"{self.name} y_{split}: need int64 labels of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}"
                )
            if x.shape[1:] != self.x_train.shape[1:]:
                raise ValueError(
                    f"{self.name} x_{split} has shape {tuple(x.shape[1:])}, x_train {tuple(self.x_train.shape[1:])}"
                )
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                raise ValueError(f"{self.name} y_{split}: labels must lie in 0..{len(self.classes) - 1}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: (C, H, W), (D,) or (L,)."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary to store with a run (source and checksum make it reproducible)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "checksum": self.checksum,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "train_size": len(self.y_train),
            "val_size": 0 if self.y_val is None else len(self.y_val),
            "test_size": len(self.y_test),
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "vocab_size": self.vocab_size,
        }
