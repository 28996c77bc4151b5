"""Issue 13: how the data reaches runs on Ray (``--ray-data``), on a real Ray on loopback (slow).

The dataset is the user's own function, which notes the process that calls it: with the default
(``object-store``) only the driver loads it and the workers read the arrays Ray holds; with
``worker`` every worker loads it itself. Either way the runs store the same data checksum and
source and the same epochs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from sweeplab.store import Store
from sweeplab.study import load_study
from sweeplab.study.execute import run_study

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")]

DATA = '''\
import os
import numpy as np

def load():
    with open({log!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    return {{"x_train": x[:200], "y_train": y[:200], "x_test": x[200:], "y_test": y[200:]}}
'''

STUDY = """
[study]
name = "data"
seeds = 2

[baseline]
epochs = 2
batch_size = 16
device = "cpu"
data = { dataset = "mydata.py:load" }
model = { name = "mlp", hidden = [16] }
optim = { name = "sgd", lr = 0.05 }
"""
TIMING = {"epoch_time_s", "train_images_per_s", "peak_mem_mb", "finished_at"}


@pytest.fixture(scope="module")
def local_ray():
    """A Ray on this machine for the module, listening on loopback only (set before ray is imported).

    With the same token settings as the other Ray test modules: ray reads its auth mode when first
    imported in the process, so a module that starts Ray later must match it."""
    from test_ray_executor import LOOPBACK_ENV

    old_env = {k: os.environ.get(k) for k in LOOPBACK_ENV}
    os.environ.update(LOOPBACK_ENV)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def train(tmp_path: Path, share: bool) -> tuple[set[int], dict, dict]:
    """Train the study in a fresh folder; the pids that loaded the data, the runs' data record, epochs."""
    from sweeplab.executor.ray_executor import RayOptions

    where = tmp_path / ("store" if share else "worker")
    where.mkdir()
    log = tmp_path / "loaded-by.txt"  # one file, so both studies have the same code and run ids
    log.unlink(missing_ok=True)
    (tmp_path / "mydata.py").write_text(DATA.format(log=str(log)))
    (tmp_path / "s.toml").write_text(STUDY)
    spec = load_study(tmp_path / "s.toml")
    results = run_study(spec, where / "sweeplab.db", ray=RayOptions(share_data=share))
    assert len(results) == 2 and all(r["status"] == "completed" for r in results.values()), results
    with Store(where / "sweeplab.db", readonly=True) as store:
        runs = store.list_runs()
        data = {r.id: (r.data_checksum, r.data_source) for r in runs}
        epochs = {(r.id, e["epoch"]): {k: v for k, v in e.items() if k not in TIMING}
                  for r in runs for e in store.epochs(r.id)}
    return {int(p) for p in log.read_text().split()}, data, epochs


@pytest.mark.timeout(300)
def test_the_driver_puts_the_data_in_the_object_store_once_and_runs_record_the_same_data(tmp_path, local_ray):
    shared_by, shared_data, shared_epochs = train(tmp_path, share=True)
    own_by, own_data, own_epochs = train(tmp_path, share=False)
    assert shared_by == {os.getpid()}  # only the driver called the data function
    assert own_by - {os.getpid()}  # the workers loaded it themselves
    assert all(checksum and source for checksum, source in shared_data.values())
    assert shared_data == own_data  # the same checksum and source whichever way the data came
    assert len(shared_epochs) == 4 and shared_epochs == own_epochs


@pytest.mark.timeout(120)
def test_ray_data_without_the_ray_executor_is_refused(tmp_path):
    from helpers import sweeplab

    (tmp_path / "s.toml").write_text(STUDY.replace("mydata.py:load", "digits"))
    r = sweeplab("run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--ray-data", "worker")
    assert r.returncode == 2 and "--ray-data" in r.stderr and "--executor ray" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
