"""torchvision image datasets (CIFAR-10/100, MNIST, Fashion-MNIST) as uint8 NCHW tensors.

Where ``cifar10`` comes from, first match wins:

1. ``$SWEEPLAB_CIFAR10``, when set: an image-folder directory or ``.tar``/``.tar.gz`` archive
   (read by :mod:`sweeplab.data.imagefolder`, decoded once and cached);
2. torchvision's files in the data directory (``<data_dir>/cifar-10-batches-py``);
3. a well-known image-folder copy, in this order: ``<data_dir>/cifar10-jpeg.tar.gz``,
   ``<data_dir>/cifar10-jpeg/``, ``../shared/data/cifar10-jpeg.tar.gz`` (relative to the working
   directory), ``/work/shared/data/cifar10-jpeg.tar.gz``;
4. a torchvision download into the data directory, when downloads are allowed.

The other datasets take steps 2 and 4 only. ``Dataset.source`` says which one was used: a JPEG
copy is lossy, and results on it are not comparable with results on the original files.
The data directory is ``--data-dir``, else ``$SWEEPLAB_DATA``, else ``./data``.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from ..config.schema import DataConfig
from ..errors import DataError
from .imagefolder import load_imagefolder
from .stats import channel_stats, sha256_arrays
from .types import Dataset

# name -> (torchvision class, folder torchvision looks for under the data directory)
TORCHVISION: dict[str, tuple[str, str]] = {
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
    "cifar100": ("CIFAR100", "cifar-100-python"),
    "mnist": ("MNIST", "MNIST/raw"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw"),
}


def cifar10_aliases(data_dir: Path) -> list[Path]:
    """Well-known places of an image-folder CIFAR-10 copy, tried when torchvision's files are absent."""
    return [
        data_dir / "cifar10-jpeg.tar.gz",
        data_dir / "cifar10-jpeg",
        Path.cwd().parent / "shared" / "data" / "cifar10-jpeg.tar.gz",
        Path("/work/shared/data/cifar10-jpeg.tar.gz"),
    ]


def load_cifar10(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
    env = os.environ.get("SWEEPLAB_CIFAR10")
    if env:
        return _checked_cifar10(load_imagefolder(env, name="cifar10", key="SWEEPLAB_CIFAR10"), "SWEEPLAB_CIFAR10")
    found = _from_torchvision("cifar10", data_dir, download=False)
    if found is not None:
        return found
    aliases = cifar10_aliases(data_dir)
    for alias in aliases:
        if alias.exists():
            return _checked_cifar10(load_imagefolder(alias, name="cifar10", key=None), str(alias))
    return _download_or_fail("cifar10", data_dir, download, also_looked=aliases)


def _checked_cifar10(ds: Dataset, origin: str) -> Dataset:
    # A wrong SWEEPLAB_CIFAR10 would otherwise train happily on whatever it points at.
    if ds.input_shape != (3, 32, 32) or ds.num_classes != 10:
        raise DataError(
            f"{origin} holds {ds.num_classes} classes of shape {list(ds.input_shape)}; "
            "CIFAR-10 has 10 classes of 3x32x32 images"
        )
    return ds


def torchvision_loader(name: str):
    """A registry loader for one of :data:`TORCHVISION` (no image-folder fallbacks)."""

    def load(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
        found = _from_torchvision(name, data_dir, download=False)
        return found if found is not None else _download_or_fail(name, data_dir, download)

    load.__name__ = f"load_{name}"
    return load


def _from_torchvision(name: str, data_dir: Path, download: bool) -> Dataset | None:
    """The dataset from torchvision's files, ``None`` when they are not there."""
    import torchvision.datasets as tvd  # deferred: importing torchvision costs ~0.5 s

    cls_name, _ = TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    try:
        # torchvision prints download progress and "Files already downloaded"; keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            train = cls(root=str(data_dir), train=True, download=download)
            test = cls(root=str(data_dir), train=False, download=download)
    except RuntimeError:
        if download:
            raise
        return None  # "Dataset not found or corrupted"
    x_train, x_test = _nchw(train.data), _nchw(test.data)
    y_train = torch.as_tensor(np.asarray(train.targets), dtype=torch.int64)
    y_test = torch.as_tensor(np.asarray(test.targets), dtype=torch.int64)
    mean, std = channel_stats(x_train)
    return Dataset(
        name=name,
        kind="image",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=list(train.classes),
        mean=mean,
        std=std,
        source=f"torchvision {cls_name} at {data_dir}",
        checksum=sha256_arrays(x_train, y_train, x_test, y_test),
    )


def _nchw(data: np.ndarray | torch.Tensor) -> torch.Tensor:
    """torchvision keeps CIFAR as NHWC numpy and MNIST as NHW tensors; models want NCHW."""
    x = torch.as_tensor(np.asarray(data), dtype=torch.uint8)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous()


def _download_or_fail(name: str, data_dir: Path, download: bool, also_looked: list[Path] | None = None) -> Dataset:
    cls_name, folder = TORCHVISION[name]
    where = (data_dir / folder).resolve()
    reason = "downloads are off (SWEEPLAB_OFFLINE)"
    if download:
        try:
            found = _from_torchvision(name, data_dir, download=True)
            assert found is not None
            return found
        except Exception as exc:  # noqa: BLE001 - any download failure becomes the message below
            reason = f"the download failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    looked = f"{where}" + "".join(f", {p}" for p in also_looked or [])
    hint = (
        f"put torchvision's {cls_name} files in {where}, "
        f"or set SWEEPLAB_DATA / --data-dir to the folder holding {folder}"
    )
    if name == "cifar10":
        hint += (
            ", or point SWEEPLAB_CIFAR10 at an image-folder copy "
            "(directory or .tar.gz with train/<class>/ and test/<class>/)"
        )
    raise DataError(f"{name} not found (looked in {looked}) and {reason}; {hint}", path="data.dataset")
