"""Issue 15: what a run records about its environment costs no start-up it does not need."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from sweeplab.train.device import _environment, environment

_FRESH = """
import json, sys
import torch
from sweeplab.train.device import environment
env = environment(torch.device("cpu"))
imported = "torchvision" in sys.modules
import torchvision
print(json.dumps({"imported": imported, "recorded": env["torchvision"], "actual": torchvision.__version__}))
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_environment_records_torchvisions_version_without_importing_it():
    out = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=110, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["imported"] is False  # a run from the data cache never imports torchvision
    assert got["recorded"] == got["actual"]  # the same string, local tag (+cu130, +cpu) included


@pytest.mark.timeout(30)
def test_environment_is_asked_once_per_process_and_names_the_device():
    first = environment(torch.device("cpu"))
    before = _environment.cache_info()
    second = environment(torch.device("cpu"))
    assert second == first and second is not first  # a fresh dict: a caller may change its copy
    after = _environment.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)  # no git subprocess again
    assert list(first)[:6] == ["sweeplab", "python", "torch", "torchvision", "numpy", "device"]
    assert first["device"].startswith("CPU") and first["torch"] == torch.__version__
