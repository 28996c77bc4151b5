"""Studies end to end: resume after kill -9, outcomes as results, parallel == sequential, export."""

from __future__ import annotations

import csv
import io
import json
import re
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


from sweeplab.store import Store
from sweeplab.study import parse_study
from sweeplab.study.execute import run_study

from helpers import default_sigint, sweeplab

TIMING = {"epoch_time_s", "train_images_per_s", "peak_mem_mb", "finished_at"}

STUDY = """
[study]
name = "{name}"
description = "digits study for tests"
seeds = {seeds}
metric = "test_acc"

[baseline]
epochs = {epochs}
batch_size = {batch}
device = "cpu"
data = {{ dataset = "digits" }}
model = {{ name = "mlp", hidden = [32] }}
optim = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}

[[arm]]
name = "linear"
model = {{ name = "linear" }}
{extra}
"""

DIVERGE_AND_FAIL = """
[[arm]]
name = "blow up"
loss = { name = "mse" }
optim = { lr = 1e10 }

[[arm]]
name = "missing data"
data = { dataset = "npz", path = "/nonexistent/data.npz" }
"""


def write_study(tmp_path: Path, name="s", seeds=1, epochs=3, batch=64, extra="") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(STUDY.format(name=name, seeds=seeds, epochs=epochs, batch=batch, extra=extra))
    return p


def epoch_rows(db: Path) -> dict[tuple[str, int], dict]:
    with Store(db, readonly=True) as store:
        out = {}
        for run in store.list_runs():
            for r in store.epochs(run.id):
                out[(run.id, r["epoch"])] = {k: v for k, v in r.items() if k not in TIMING}
        return out


def test_diverging_and_failing_arms_do_not_stop_the_study(tmp_path):
    study = write_study(tmp_path, extra=DIVERGE_AND_FAIL)
    r = sweeplab("run", str(study), "--out", str(tmp_path / "out"), "--workers", "1")
    assert r.returncode == 0, r.stderr + r.stdout
    con = sqlite3.connect(tmp_path / "out" / "sweeplab.db")
    status = dict(con.execute("select sr.arm, r.status from study_runs sr join runs r on r.id = sr.run_id"))
    assert status == {"baseline": "completed", "linear": "completed", "blow up": "diverged", "missing data": "failed"}
    detail = dict(con.execute("select sr.arm, r.status_detail from study_runs sr join runs r on r.id = sr.run_id"))
    assert json.loads(detail["blow up"])["epoch"] == 1
    assert "/nonexistent/data.npz" in detail["missing data"]
    # the finished runs have all their epochs
    n = dict(con.execute("select sr.arm, count(e.epoch) from study_runs sr left join epochs e on e.run_id = sr.run_id "
                         "group by sr.arm"))
    assert n["baseline"] == 3 and n["linear"] == 3 and n["blow up"] == 0
    # Output to a pipe, not a terminal: one plain progress line per run as it finishes.
    lines = [line for line in r.stdout.splitlines() if re.match(r"\[\d/4\] ", line)]
    assert [line[:5] for line in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"], r.stdout
    assert sum(": completed, test acc " in line for line in lines) == 2
    assert sum(": diverged, " in line for line in lines) == 1
    assert sum(": failed, " in line and "/nonexistent/data.npz" in line for line in lines) == 1
    assert "epochs 6/6 | " in lines[-1] and "ETA 0s" in lines[-1]  # stopped runs leave the total


def _wait_for(cond, timeout=180.0, every=0.05):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(every)
    return False


def test_resume_after_kill_9_matches_uninterrupted_run(tmp_path):
    # batch 2 on digits: ~720 steps (a few tenths of a second) per epoch, so the kill lands mid-epoch.
    study = write_study(tmp_path, seeds=1, epochs=6, batch=2)
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    db = killed / "sweeplab.db"
    exe = Path(sys.executable).parent / "sweeplab"
    proc = subprocess.Popen([str(exe), "run", str(study), "--out", str(killed), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def second_run_started() -> bool:
        # the first run is finished and the second has committed at least one epoch
        if not db.exists():
            return False
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            done = con.execute("select count(*) from runs where status = 'completed'").fetchone()[0]
            partial = con.execute("select count(*) from runs r where status = 'running' and "
                                  "(select count(*) from epochs e where e.run_id = r.id) >= 1").fetchone()[0]
            con.close()
            return done == 1 and partial == 1
        except sqlite3.Error:
            return False

    try:
        assert _wait_for(second_run_started), "the study never reached its second run"
        time.sleep(0.05)  # into the next epoch
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL

    with Store(db, readonly=True) as store:
        before = {r.id: (r.status, r.finished_at, len(store.epochs(r.id))) for r in store.list_runs()}
    finished = [k for k, v in before.items() if v[0] == "completed"]
    interrupted = [k for k, v in before.items() if v[0] == "running"]
    assert len(finished) == 1 and len(interrupted) == 1
    assert 1 <= before[interrupted[0]][2] < 6

    r = sweeplab("run", str(study), "--out", str(killed), "--workers", "1")
    assert r.returncode == 0, r.stderr
    r = sweeplab("run", str(study), "--out", str(reference), "--workers", "1")
    assert r.returncode == 0, r.stderr

    with Store(db, readonly=True) as store:
        after = {r.id: (r.status, r.finished_at, len(store.epochs(r.id))) for r in store.list_runs()}
    assert after[finished[0]] == before[finished[0]]  # the finished run was not retrained
    assert all(v[0] == "completed" and v[2] == 6 for v in after.values())
    con = sqlite3.connect(db)
    dupes = con.execute("select run_id, epoch, count(*) from epochs group by run_id, epoch having count(*) > 1")
    assert dupes.fetchall() == []
    # on the CPU the resumed curves equal those of a run that was never interrupted
    assert epoch_rows(db) == epoch_rows(reference / "sweeplab.db")


def test_parallel_and_sequential_give_the_same_results(tmp_path):
    spec = parse_study(STUDY.format(name="p", seeds=2, epochs=2, batch=64, extra=""))
    run_study(spec, tmp_path / "seq" / "sweeplab.db", workers=1, threads=1)
    run_study(spec, tmp_path / "par" / "sweeplab.db", workers=2, threads=1)
    seq, par = epoch_rows(tmp_path / "seq" / "sweeplab.db"), epoch_rows(tmp_path / "par" / "sweeplab.db")
    assert len(seq) == 4 * 2 and seq == par


def test_batch_size_max_on_cpu_fits_the_budget_and_is_recorded(tmp_path):
    from sweeplab.resolve import build_run_config

    from helpers import fit_recorded

    def cfg(budget):
        return build_run_config({"epochs": 1, "batch_size": "max", "memory_budget_mb": budget, "device": "cpu",
                                 "data": {"dataset": "digits"}, "model": {"name": "tutorial_cnn"}})

    used = {}
    with Store(tmp_path / "s.db") as store:
        for budget in (2, 4096):
            res = fit_recorded(cfg(budget), store)
            assert res.status == "completed"
            used[budget] = store.get_run(res.run_id)["batch_size_used"]
    assert used[4096] == 1024  # the default cap (digits has 1437 training examples)
    assert 1 <= used[2] < 1024 and used[2] & (used[2] - 1) == 0  # a power of two under a tiny budget


def test_dry_run_lists_runs_and_what_is_done(tmp_path):
    study = write_study(tmp_path, seeds=2, epochs=1)
    out = tmp_path / "out"
    r = sweeplab("run", str(study), "--out", str(out), "--dry-run")
    assert r.returncode == 0 and r.stdout.count(" new ") >= 4 and "4 unique runs, 0 done" in r.stdout
    spec = parse_study(study.read_text())
    run_study(spec, out / "sweeplab.db", workers=1)
    r = sweeplab("run", str(study), "--out", str(out), "--dry-run")
    assert "4 unique runs, 4 done" in r.stdout and r.stdout.count("completed") == 4
    assert all(run.run_id in r.stdout for run in spec.runs)


def test_export_csv_has_one_row_per_run_epoch(tmp_path):
    study = write_study(tmp_path, seeds=2, epochs=2)
    spec = parse_study(study.read_text())
    db = tmp_path / "out" / "sweeplab.db"
    run_study(spec, db, workers=1)
    r = sweeplab("export", "s", "--out", str(tmp_path / "out"), "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 4 * 2
    for col in ("study", "arm", "label", "seed", "run_id", "status", "epoch", "train_loss", "train_acc",
                "test_loss", "test_acc", "lr", "epoch_time_s", "test_acc_class0"):
        assert col in rows[0], col
    assert {(x["run_id"], x["epoch"]) for x in rows} == {(s.run_id, str(e)) for s in spec.runs for e in (1, 2)}
    out = tmp_path / "runs.csv"
    r = sweeplab("export", "s", "--out", str(tmp_path / "out"), "--table", "runs", "-o", str(out))
    runs = list(csv.DictReader(out.open()))
    assert len(runs) == 4 and runs[0]["config.optim.lr"] == "0.05" and "config.model.name" in runs[0]
    r = sweeplab("export", "s", "--out", str(tmp_path / "out"), "--format", "json")
    assert len(json.loads(r.stdout)["epochs"]) == 8


def test_checkpoint_command_writes_a_loadable_state_dict(tmp_path):
    import torch

    from sweeplab.models import create_model

    study = write_study(tmp_path, seeds=1, epochs=2)
    spec = parse_study(study.read_text())
    run_study(spec, tmp_path / "out" / "sweeplab.db", workers=1)
    rid = spec.runs[0].run_id
    r = sweeplab("checkpoint", rid[:6], "-o", str(tmp_path / "m.pt"), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["run_id"] == rid and meta["config"]["model"]["hidden"] == [32]
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[32])
    model.load_state_dict(torch.load(tmp_path / "m.pt"))


def test_ctrl_c_marks_the_running_run_interrupted_and_rerun_resumes(tmp_path):
    study = write_study(tmp_path, seeds=1, epochs=4, batch=2)
    out = tmp_path / "out"
    db = out / "sweeplab.db"
    exe = Path(sys.executable).parent / "sweeplab"
    proc = subprocess.Popen([str(exe), "run", str(study), "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint)

    def one_epoch_committed() -> bool:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            n = con.execute("select count(*) from epochs").fetchone()[0]
            con.close()
            return n >= 1
        except sqlite3.Error:
            return False

    try:
        assert _wait_for(one_epoch_committed)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    con = sqlite3.connect(db)
    statuses = dict(con.execute("select status, count(*) from runs group by status"))
    assert statuses.get("interrupted") == 1 and "running" not in statuses
    r = sweeplab("run", str(study), "--out", str(out), "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert dict(con.execute("select status, count(*) from runs group by status")) == {"completed": 2}
    assert con.execute("select count(*) from epochs").fetchone()[0] == 8
