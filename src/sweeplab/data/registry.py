"""Dataset registry: name -> loader, and :func:`load_dataset`, the one entry point from config.

``load_dataset`` loads the named dataset, keeps the first ``train_subset``/``test_subset``
examples, then carves the validation split out of the training set with ``split_seed``, so the
split is the same for every run seed of a study.

Data directory (torchvision files, ``cifar10-jpeg.tar.gz``): the ``data_dir`` argument
(``--data-dir``), else ``$SWEEPLAB_DATA``, else ``./data``. Downloads are attempted unless
``download=False`` is passed or ``$SWEEPLAB_OFFLINE`` is set (to anything but ``0``/``false``/empty).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..config.schema import DataConfig
from ..errors import DataError
from ..usercode import parse_ref
from .imagefolder import load_imagefolder
from .npz import load_npz
from .sequences import load_palindrome
from .sklearn_sets import load_blobs, load_circles, load_digits, load_moons
from .types import Dataset
from .user import load_user_data
from .vision import load_cifar10, torchvision_loader

Loader = Callable[[DataConfig, Path, bool], Dataset]


def _path_from_config(cfg: DataConfig, data_dir: Path) -> Path:
    """``data.path``: as given (relative to the working directory), else relative to the data dir."""
    if not cfg.path:
        raise DataError(f"dataset {cfg.dataset!r} needs data.path (a file or directory to read)", path="data.path")
    p = Path(cfg.path).expanduser()
    if not p.exists() and not p.is_absolute() and (data_dir / p).exists():
        p = data_dir / p
    if not p.exists():
        raise DataError(f"{p.resolve()} does not exist", path="data.path")
    return p.resolve()


def _imagefolder(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
    return load_imagefolder(_path_from_config(cfg, data_dir), key="data.path")


def _npz(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
    return load_npz(_path_from_config(cfg, data_dir), key="data.path")


_REGISTRY: dict[str, tuple[Loader, str]] = {
    "digits": (load_digits, "scikit-learn handwritten digits: 1,797 real 8x8 greyscale images, 10 classes"),
    "moons": (load_moons, "scikit-learn two interleaving half circles: 2-D features, 2 classes"),
    "circles": (load_circles, "scikit-learn concentric circles: 2-D features, 2 classes"),
    "blobs": (load_blobs, "scikit-learn Gaussian blobs: n_features-D features, `centers` classes"),
    "palindrome": (load_palindrome, "digit palindromes: predict the last digit from the first L-1 (sequence)"),
    "cifar10": (load_cifar10, "CIFAR-10 32x32 colour images, 10 classes (torchvision, or an image-folder copy)"),
    "cifar100": (torchvision_loader("cifar100"), "CIFAR-100 32x32 colour images, 100 classes (torchvision)"),
    "mnist": (torchvision_loader("mnist"), "MNIST 28x28 handwritten digits, 10 classes (torchvision)"),
    "fashion_mnist": (
        torchvision_loader("fashion_mnist"),
        "Fashion-MNIST 28x28 clothing images, 10 classes (torchvision)",
    ),
    "imagefolder": (
        _imagefolder,
        "images in data.path (directory or .tar/.tar.gz) as train/<class>/* and test/<class>/*",
    ),
    "npz": (_npz, "arrays x_train y_train x_test y_test in the .npz file data.path (Keras layout)"),
}


def list_datasets() -> dict[str, str]:
    """Registered dataset names with a one-line description each."""
    return {name: desc for name, (_, desc) in _REGISTRY.items()}


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory: the argument, else ``$SWEEPLAB_DATA``, else ``./data``."""
    chosen = data_dir if data_dir is not None else os.environ.get("SWEEPLAB_DATA") or "data"
    return Path(chosen).expanduser()


def downloads_allowed() -> bool:
    return os.environ.get("SWEEPLAB_OFFLINE", "").strip().lower() in ("", "0", "false", "no")


def load_dataset(cfg: DataConfig, data_dir: str | Path | None = None, *, download: bool | None = None,
                 code: Mapping[str, Any] | None = None) -> Dataset:
    """Load ``cfg.dataset`` and apply the subsets and validation split of ``cfg``.

    ``download``: whether torchvision may download missing files (default: unless
    ``$SWEEPLAB_OFFLINE`` is set). ``code``: the run's code files, where a dataset named like
    ``"mydata.py:load"`` is found (see :mod:`sweeplab.data.user`).
    """
    if parse_ref(cfg.dataset) is not None:
        ds = load_user_data(cfg.dataset, code or {})
        return _validation_split(_subsets(ds, cfg), cfg)
    entry = _REGISTRY.get(cfg.dataset)
    if entry is None:
        available = ", ".join(sorted(_REGISTRY))
        raise DataError(f"unknown dataset {cfg.dataset!r}; available: {available}", path="data.dataset")
    ds = entry[0](cfg, resolve_data_dir(data_dir), downloads_allowed() if download is None else download)
    ds = _subsets(ds, cfg)
    return _validation_split(ds, cfg)


def _subsets(ds: Dataset, cfg: DataConfig) -> Dataset:
    changes: dict[str, object] = {}
    notes = list(ds.notes)
    for split, n in (("train", cfg.train_subset), ("test", cfg.test_subset)):
        if n is None:
            continue
        have = len(getattr(ds, f"y_{split}"))
        if n > have:  # a quick pass (--set data.train_subset=1000) must work on small sets too
            notes.append(f"data.{split}_subset={n}: {ds.name} has {have} {split} examples, all are used")
            n = have
        changes["notes"] = tuple(notes)
        changes[f"x_{split}"] = getattr(ds, f"x_{split}")[:n]
        changes[f"y_{split}"] = getattr(ds, f"y_{split}")[:n]
    return replace(ds, **changes) if changes else ds


def _validation_split(ds: Dataset, cfg: DataConfig) -> Dataset:
    """Move a random ``val_size`` (or ``val_fraction``) of the training set to ``x_val``/``y_val``."""
    n = len(ds.y_train)
    if cfg.val_size is not None:
        k, key, asked = cfg.val_size, "data.val_size", f"val_size={cfg.val_size}"
    elif cfg.val_fraction is not None:
        k, key = round(cfg.val_fraction * n), "data.val_fraction"
        asked = f"val_fraction={cfg.val_fraction} ({k} examples)"
    else:
        return ds
    if k < 1:
        raise DataError(f"{asked} of {n} training examples leaves no validation examples", path=key)
    if k >= n:
        raise DataError(
            f"{asked} but {ds.name} has only {n} training examples; the validation split must leave "
            f"some for training (at most {n - 1})",
            path=key,
        )
    g = torch.Generator().manual_seed(cfg.split_seed)
    perm = torch.randperm(n, generator=g)
    # Sorted, so train and val keep the source order (classes interleaved for image folders).
    val_idx, train_idx = perm[:k].sort().values, perm[k:].sort().values
    return replace(
        ds,
        x_train=ds.x_train[train_idx],
        y_train=ds.y_train[train_idx],
        x_val=ds.x_train[val_idx],
        y_val=ds.y_train[val_idx],
    )


def normalization(ds: Dataset, cfg: DataConfig) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The ``(mean, std)`` to give :class:`DeviceLoader`: ``cfg.mean``/``cfg.std`` where set, else
    the dataset's; ``(None, None)`` when ``cfg.normalize`` is off or the data are token sequences.
    """
    if not cfg.normalize or ds.kind == "sequence":
        return None, None
    width = ds.input_shape[0]  # channels (images) or features
    out = []
    for key, given, default in (("data.mean", cfg.mean, ds.mean), ("data.std", cfg.std, ds.std)):
        if given is None:
            out.append(default)
            continue
        if len(given) not in (1, width):
            unit = "channels" if ds.kind == "image" else "features"
            raise DataError(f"has {len(given)} values but {ds.name} has {width} {unit}", path=key)
        out.append(tuple(float(v) for v in given) * (width if len(given) == 1 else 1))
    return out[0], out[1]
