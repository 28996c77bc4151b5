"""Shared fixtures: the offline CIFAR-10 copy, a per-session decode cache, CLI helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import LOOPBACK_ENV, cifar_archive

os.environ.update(LOOPBACK_ENV)  # before any test imports Ray (see helpers.LOOPBACK_ENV)


@pytest.fixture(scope="session")
def cifar10_env(tmp_path_factory) -> dict[str, str]:
    """Environment variables that make `cifar10` resolve to the shared JPEG copy (or skip)."""
    archive = cifar_archive()
    if archive is None:
        pytest.skip("the shared CIFAR-10 copy (../shared/data/cifar10-jpeg.tar.gz) is not here")
    cache = os.environ.get("SWEEPLAB_CACHE") or str(Path.home() / ".cache" / "sweeplab")
    return {"SWEEPLAB_CIFAR10": str(archive), "SWEEPLAB_CACHE": cache}
