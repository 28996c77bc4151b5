"""Issue 13: resources per run from the study file (``[study] resources``), for ``--executor ray``.

The validation tests need no Ray; the one that checks the resources reach Ray runs the real CLI,
which starts its own Ray on this machine's loopback (slow).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from sweeplab.errors import ConfigError
from sweeplab.store import Store
from sweeplab.study import parse_study

from helpers import sweeplab

HAVE_RAY = importlib.util.find_spec("ray") is not None

STUDY = """
[study]
name = "res"
seeds = {seeds}
{resources}

[baseline]
epochs = 2
batch_size = 64
device = "cpu"
data = {{ dataset = "digits" }}
model = {{ name = "mlp", hidden = [16] }}
optim = {{ name = "sgd", lr = 0.05 }}
"""


def study(resources: str = "", seeds: int = 1) -> str:
    return STUDY.format(resources=resources, seeds=seeds)


@pytest.mark.timeout(30)
def test_resources_are_read_and_only_then_part_of_the_stored_spec():
    plain = parse_study(study())
    assert plain.resources == {} and "resources" not in plain.to_dict()  # old studies keep their hash
    spec = parse_study(study("resources = { num_cpus = 2, num_gpus = 0.25 }"))
    assert spec.resources == {"num_cpus": 2.0, "num_gpus": 0.25}
    assert spec.to_dict()["resources"] == {"num_cpus": 2.0, "num_gpus": 0.25}
    assert parse_study(study("resources = { num_gpus = 1 }")).resources == {"num_gpus": 1.0}
    assert [r.run_id for r in spec.runs] == [r.run_id for r in plain.runs]  # not part of any run's identity


@pytest.mark.timeout(30)
@pytest.mark.parametrize("table, where, says", [
    ("{ num_cpu = 2 }", "study.resources.num_cpu", "unknown key (allowed: num_cpus, num_gpus)"),
    ('{ num_cpus = "two" }', "study.resources.num_cpus", "must be a number (got 'two')"),
    ("{ num_cpus = true }", "study.resources.num_cpus", "must be a number (got True)"),
    ("{ num_cpus = 0 }", "study.resources.num_cpus", "must be >= 0.01 (got 0)"),
    ("{ num_gpus = -0.5 }", "study.resources.num_gpus", "must be >= 0 (got -0.5)"),
    ("{ num_gpus = 1.5 }", "study.resources.num_gpus", "must be a fraction below 1 or a whole number (got 1.5)"),
    ("{ num_cpus = nan }", "study.resources.num_cpus", "must be a number (got nan)"),
    ("4", "study.resources", "must be a table such as { num_cpus = 2, num_gpus = 0.25 } (got 4)"),
])
def test_a_bad_resources_table_names_the_key_and_the_value(table, where, says):
    with pytest.raises(ConfigError) as err:
        parse_study(study(f"resources = {table}"))
    assert err.value.path == where
    assert str(err.value) == f"{where}: {says}"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_cli_refuses_a_bad_resources_table_in_one_line_with_exit_2(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(study("resources = { num_cpus = -1 }"))
    out = sweeplab("run", str(path), "--out", str(tmp_path / "out"))
    assert out.returncode == 2, out.stderr
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1 and "study.resources.num_cpus" in lines[0] and "-1" in lines[0], lines
    assert "Traceback" not in out.stderr and not (tmp_path / "out" / "sweeplab.db").exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_local_executor_notes_and_ignores_the_resources(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(study("resources = { num_cpus = 2 }"))
    out = sweeplab("run", str(path), "--out", str(tmp_path / "out"), "--workers", "1")
    assert out.returncode == 0, out.stderr
    assert "[study] resources apply to --executor ray only" in out.stdout
    with Store(tmp_path / "out" / "sweeplab.db", readonly=True) as store:
        assert [r.status for r in store.list_runs()] == ["completed"]


def _epoch_order(db: Path) -> list[str]:
    """The run id of every stored epoch, in the order the epochs finished."""
    with Store(db, readonly=True) as store:
        runs = store.list_runs()
        assert len(runs) == 2 and all(r.status == "completed" for r in runs)
        rows = [(e["finished_at"], r.id) for r in runs for e in store.epochs(r.id)]
    return [rid for _, rid in sorted(rows)]


def _switches(order: list[str]) -> int:
    return sum(a != b for a, b in zip(order, order[1:]))


@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'sweeplab[ray]')")
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_study_resources_reach_ray_and_the_command_line_overrides_them(tmp_path):
    """On this 2-CPU machine's own Ray (the CLI starts it, loopback only): with num_cpus = 2 from
    the study file each run holds both CPUs, so the two runs train one after the other; with
    --num-cpus 1 on top they train side by side (their epochs interleave)."""
    if os.cpu_count() != 2:
        pytest.skip("needs a 2-CPU machine: the CLI's own Ray gets all of this machine's CPUs")
    path = tmp_path / "s.toml"
    text = study("resources = { num_cpus = 2 }", seeds=2).replace("epochs = 2", "epochs = 8")
    path.write_text(text.replace("batch_size = 64", "batch_size = 4"))  # ~0.5 s epochs
    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    alone = sweeplab("run", str(path), "--out", str(tmp_path / "alone"), "--executor", "ray", env=env, timeout=280)
    assert alone.returncode == 0, alone.stderr[-2000:]
    order = _epoch_order(tmp_path / "alone" / "sweeplab.db")
    assert len(order) == 16 and _switches(order) == 1, order  # every epoch of one run, then the other's

    side = sweeplab("run", str(path), "--out", str(tmp_path / "side"), "--executor", "ray", "--num-cpus", "1",
                    env=env, timeout=280)
    assert side.returncode == 0, side.stderr[-2000:]
    order = _epoch_order(tmp_path / "side" / "sweeplab.db")
    assert len(order) == 16 and _switches(order) > 1, order  # both trained at once


@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'sweeplab[ray]')")
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_cluster_too_small_for_one_run_is_refused_before_the_study_is_recorded(tmp_path):
    """The CLI's own Ray has this machine's CPUs; a run asking for more could never start. That is
    one line naming the option, exit 2, and the store as it was: no new version, no pending runs."""
    path = tmp_path / "s.toml"
    path.write_text(study())
    db = tmp_path / "out" / "sweeplab.db"
    db.parent.mkdir()
    Store(db).close()  # a store that holds nothing yet: any study recorded would change it
    before = db.read_bytes()
    r = sweeplab("run", str(path), "--out", str(db.parent), "--executor", "ray", "--num-cpus", "4096",
                 env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, timeout=280)
    lines = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert r.returncode == 2 and len(lines) == 1 and "asks for 4096 CPUs" in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "recorded as version" not in r.stdout
    assert db.read_bytes() == before
