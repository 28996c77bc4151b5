"""Datasets that scikit-learn ships or generates: no download, ready in milliseconds.

``moons``, ``circles`` and ``blobs`` are 2-D (or ``n_features``-D) float features; ``digits`` is
1,797 real 8x8 handwritten digits, exposed as uint8 images so that image models and the image
loader path (normalisation, augmentation) can be tested on real data in seconds.
Every split is stratified and deterministic in ``cfg.random_state``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config.schema import DataConfig
from .stats import channel_stats, feature_stats, sha256_arrays
from .types import Dataset


def _split(x: np.ndarray, y: np.ndarray, cfg: DataConfig) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split  # deferred: importing sklearn costs ~1 s

    return train_test_split(x, y, test_size=cfg.test_fraction, random_state=cfg.random_state, stratify=y)


def _features(name: str, x: np.ndarray, y: np.ndarray, cfg: DataConfig, source: str) -> Dataset:
    x_tr, x_te, y_tr, y_te = _split(x.astype(np.float32), y.astype(np.int64), cfg)
    x_train, x_test = torch.from_numpy(np.ascontiguousarray(x_tr)), torch.from_numpy(np.ascontiguousarray(x_te))
    y_train, y_test = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    mean, std = feature_stats(x_train)
    return Dataset(
        name=name,
        kind="features",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=[str(c) for c in range(int(y.max()) + 1)],
        mean=mean,
        std=std,
        source=source,
        checksum=sha256_arrays(x_train, y_train, x_test, y_test),
    )


def load_moons(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=cfg.n_samples, noise=cfg.noise, random_state=cfg.random_state)
    src = f"sklearn.datasets.make_moons(n_samples={cfg.n_samples}, noise={cfg.noise}, random_state={cfg.random_state})"
    return _features("moons", x, y, cfg, src)


def load_circles(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=cfg.n_samples, noise=cfg.noise, factor=cfg.factor, random_state=cfg.random_state)
    src = (
        f"sklearn.datasets.make_circles(n_samples={cfg.n_samples}, noise={cfg.noise}, "
        f"factor={cfg.factor}, random_state={cfg.random_state})"
    )
    return _features("circles", x, y, cfg, src)


def load_blobs(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=cfg.n_samples, n_features=cfg.n_features, centers=cfg.centers, random_state=cfg.random_state
    )
    src = (
        f"sklearn.datasets.make_blobs(n_samples={cfg.n_samples}, n_features={cfg.n_features}, "
        f"centers={cfg.centers}, random_state={cfg.random_state})"
    )
    return _features("blobs", x, y, cfg, src)


def load_digits(cfg: DataConfig, data_dir: Path, download: bool) -> Dataset:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # Pixel values are 0..16; scale to the 0..255 of every other image dataset.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = _split(images, bunch.target.astype(np.int64), cfg)
    x_train, x_test = torch.from_numpy(np.ascontiguousarray(x_tr)), torch.from_numpy(np.ascontiguousarray(x_te))
    y_train, y_test = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    mean, std = channel_stats(x_train)
    return Dataset(
        name="digits",
        kind="image",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=[str(d) for d in range(10)],
        mean=mean,
        std=std,
        source="sklearn.datasets.load_digits",
        checksum=sha256_arrays(x_train, y_train, x_test, y_test),
    )
