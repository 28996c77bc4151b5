"""Issue 9: sweeplab as a library. The README's "From Python" code runs as written, and the API
shares the CLI's store, resume and outcomes."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

import sweeplab as sl
from helpers import ROOT, sweeplab
from sweeplab.errors import StoreError


def readme_python() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the From Python section has one code block"
    return blocks[0]


def test_readme_from_python_section_runs_as_written(tmp_path):
    code = readme_python()
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "runs" / "reports" / "notebook" / "report.html").is_file()
    # the runs table: 2 arms x 2 seeds, all completed, the wider arm has more parameters
    lines = [line.split() for line in r.stdout.splitlines() if re.match(r"^\d+\s+(baseline|wider)\s", line)]
    assert len(lines) == 4 and all(parts[3] == "completed" for parts in lines), r.stdout
    params = {parts[1]: int(parts[4]) for parts in lines}
    assert params["wider"] > params["baseline"]
    assert "completed" in r.stdout.splitlines()[-1]  # the one-off train
    assert "registered in this process only" not in r.stderr  # workers=1 asked for: no fallback needed


def test_api_and_cli_share_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "s.toml"
    study.write_text(
        '[study]\nname = "shared"\nseeds = 2\n\n[baseline]\nepochs = 2\ndevice = "cpu"\n'
        'data = { dataset = "digits", train_subset = 300 }\nmodel = { name = "mlp", hidden = [8] }\n\n'
        '[[arm]]\nname = "linear"\nmodel = { name = "linear" }\n')
    df = sl.run(str(study), out="out", progress=False)
    assert isinstance(df, pd.DataFrame) and len(df) == 4 and set(df["status"]) == {"completed"}
    # the CLI finds everything done, and exports the same rows the API returns
    r = sweeplab("run", str(study), "--out", "out", cwd=tmp_path)
    assert r.returncode == 0 and "4 runs (4 already done, 0 to train)" in r.stdout, r.stdout
    r = sweeplab("export", "shared", "--out", "out", "--format", "json", cwd=tmp_path)
    exported = json.loads(r.stdout)
    epochs = sl.epochs("shared", out="out")
    assert len(epochs) == len(exported["epochs"]) == 8
    assert sorted(epochs["test_acc"]) == sorted(e["test_acc"] for e in exported["epochs"])
    # an edited study is not silently shown with the old one's results
    study.write_text(study.read_text().replace("epochs = 2", "epochs = 3"))
    with pytest.raises(StoreError, match="as defined now has not been run"):
        sl.epochs(str(study), out="out")
    assert len(sl.epochs(str(study), out="out", version=1)) == 8


@pytest.fixture
def registry():
    """Models registered by a test are gone after it (the registry is per process)."""
    from sweeplab.models.registry import MODELS

    before = dict(MODELS)
    yield
    MODELS.clear()
    MODELS.update(before)


def test_notebook_model_falls_back_to_one_worker_and_says_so(tmp_path, registry):
    from torch import nn

    @sl.register_model("api_test_net")
    def net(num_classes, hidden=4):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    study = {"study": {"name": "nb", "seeds": 2},
             "baseline": {"epochs": 1, "device": "cpu", "data": {"dataset": "digits", "train_subset": 200},
                          "model": {"name": "api_test_net"}}}
    with pytest.warns(UserWarning, match="api_test_net is registered in this process only"):
        df = sl.run(study, out=tmp_path / "out", workers=2, progress=False)
    assert list(df["status"]) == ["completed", "completed"]
    # the source is part of the identity: redefining the function makes new runs
    ids = set(df["run_id"])

    @sl.register_model("api_test_net")
    def net2(num_classes, hidden=4):  # noqa: ARG001 - a different body
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    assert {r.run_id for r in sl.load_study(study).runs}.isdisjoint(ids)


def test_a_script_without_a_main_guard_trains_in_process_and_says_so(tmp_path):
    # spawned workers re-run a script's top level: without the guard each would start the study again
    script = tmp_path / "sweep.py"
    script.write_text(
        "import sweeplab as sl\n"
        "study = {'study': {'name': 'unguarded', 'seeds': 2}, 'baseline': {'epochs': 1, 'device': 'cpu',\n"
        "         'data': {'dataset': 'digits', 'train_subset': 200}, 'model': {'name': 'linear'}}}\n"
        "print(list(sl.run(study, out='out', workers=2, progress=False)['status']))\n")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "['completed', 'completed']"
    assert "no `if __name__ == \"__main__\":` guard" in r.stderr and r.stdout.count("completed") == 2



@pytest.mark.slow  # about 15 s: a real `sweeplab train` in a subprocess, and the same run here
@pytest.mark.timeout(300)
def test_train_of_a_run_another_process_trains_waits_for_its_result(tmp_path):
    """Two processes train one config on one store at once: the second leaves the run to the first
    (as two `sweeplab run` share a study) and returns its final result, every epoch and step row,
    not a snapshot of a run still training."""
    import sqlite3
    import time

    epochs = 20  # at batch 2, long enough for this process to find the run still training
    config = {"data": {"dataset": "digits", "train_subset": 400}, "model": {"name": "mlp", "hidden": [16]},
              "epochs": epochs, "batch_size": 2, "eval_every_steps": 50, "device": "cpu"}
    sets = ["--set", "data.train_subset=400", "--set", "model.hidden=[16]", "--set", "eval_every_steps=50"]
    db = tmp_path / "sweeplab.db"
    other = subprocess.Popen([sys.executable, "-m", "sweeplab", "train", "--dataset", "digits", "--model", "mlp",
                              "--epochs", str(epochs), "--batch-size", "2", "--device", "cpu", *sets, "--out", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def epochs_done() -> int:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                return con.execute("SELECT count(*) FROM epochs").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return 0

    try:
        end = time.monotonic() + 200
        while epochs_done() < 1 and other.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert 1 <= epochs_done() < epochs, "the other process never got going, or finished before this one started"
        result = sl.train(config, out=tmp_path)
    finally:
        _, err = other.communicate(timeout=200)
    assert other.returncode == 0, err
    assert result.skipped  # trained by the other process, not here too
    assert result.status == "completed" and [e["epoch"] for e in result.epochs] == list(range(1, epochs + 1))
    from sweeplab.store import Store

    with Store(db, readonly=True) as store:
        assert result.epochs == store.epochs(result.run_id)
        assert len(store.steps(result.run_id)) == epochs * 200 // 50
