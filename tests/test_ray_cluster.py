"""Issue 13: a node lost mid-run, simulated with Ray's own ``ray.cluster_utils.Cluster`` (several
Ray nodes on this machine, on loopback): the run moves to another node and resumes from its last
committed epoch. Its own module, because it needs a Ray of its own (not the local one of
test_ray_executor.py)."""

from __future__ import annotations

import os

import pytest

from sweeplab.study import parse_study
from sweeplab.study.execute import run_study

from test_ray_executor import HAVE_RAY, LOOPBACK_ENV, assert_loopback_only, epoch_rows, epochs_by_run, write_study


@pytest.fixture
def cluster():
    """A head with no CPUs (the driver's node) and one worker node of 1 CPU; shut down after."""
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'sweeplab[ray]')")
    old = {k: os.environ.get(k) for k in LOOPBACK_ENV}
    os.environ.update(LOOPBACK_ENV)  # before ray is imported: it reads this when imported
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        first = c.add_node(num_cpus=1)
        ray.init(address=c.address, log_to_driver=False)
        yield c, first
    finally:
        ray.shutdown()
        c.shutdown()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_lost_node_moves_its_run_to_another_node_and_resumes(tmp_path, cluster):
    from sweeplab.executor.ray_executor import RayOptions

    c, first = cluster
    text = write_study(tmp_path, epochs=4, batch=8).read_text()
    spec = parse_study(text.replace('[[arm]]\nname = "linear"\nmodel = { name = "linear" }\n', ""))
    assert len(spec.runs) == 1
    seen = {"epochs": [], "retries": [], "removed": False}

    def on_event(run_id, event, info):
        if event == "retry":
            seen["retries"].append(info["reason"])
        elif event == "epoch":
            seen["epochs"].append(info["epoch"])
            if info["epoch"] == 2 and not seen["removed"]:  # lose the node, bring another one
                seen["removed"] = True
                assert_loopback_only([os.getpid()])
                c.remove_node(first)
                c.add_node(num_cpus=1)

    db = tmp_path / "ray" / "sweeplab.db"
    results = run_study(spec, db, ray=RayOptions(max_retries=1), on_event=on_event)
    assert seen["removed"] and len(seen["retries"]) == 1, seen
    assert list(results.values())[0]["status"] == "completed"
    assert list(epochs_by_run(db).values()) == [[1, 2, 3, 4]]  # none missing, none twice
    run_study(spec, tmp_path / "local" / "sweeplab.db", workers=1)
    assert epoch_rows(db) == epoch_rows(tmp_path / "local" / "sweeplab.db")
