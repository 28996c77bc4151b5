"""sweeplab: ablation studies of small neural networks on PyTorch.

A study (baseline + arms + seeds) is one TOML file; every run is trained fast on CPU or GPU,
resumably, with every epoch stored in SQLite; reports compare arms with statistics.

From Python (see :mod:`sweeplab.api`)::

    import sweeplab as sl
    study = sl.load_study("study.toml")
    sl.run(study, out="runs", workers=2)
    df = sl.epochs(study, out="runs")
    lr = sl.lr_find(study=study, arm="baseline").suggestion   # LR range test

Names load on first use, so ``import sweeplab`` (and the CLI's start) stays fast.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

#: The public API: name -> module that defines it.
_API = {
    "load_study": "sweeplab.api",
    "run": "sweeplab.api",
    "epochs": "sweeplab.api",
    "runs": "sweeplab.api",
    "steps": "sweeplab.api",
    "report": "sweeplab.api",
    "train": "sweeplab.api",
    "run_config": "sweeplab.api",
    "lr_find": "sweeplab.api",
    "register_model": "sweeplab.models.registry",
    "RunConfig": "sweeplab.config.schema",
    "StudySpec": "sweeplab.study.spec",
    "SweeplabError": "sweeplab.errors",
    "ConfigError": "sweeplab.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sweeplab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    """``sl.report`` and ``sl.train`` are the API's functions, but ``sweeplab.report`` and
    ``sweeplab.train`` are also subpackages, and importing a subpackage sets it as an attribute
    of its parent. This keeps the functions: the subpackages stay importable by name
    (``from sweeplab.report import write_report``), they are just not attributes of ``sweeplab``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
