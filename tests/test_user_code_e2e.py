"""Issue 9, "Done when": a study of the user's own nets.py with 2 spawned workers, kill -9 and
resume, a report, and an edit of one network that retrains exactly that network's runs; the
shipped example study smoke-runs (slow, needs the shared CIFAR-10 copy)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, sweeplab
from test_user_code import NETS, STUDY

EXE = Path(sys.executable).parent / "sweeplab"


def epochs_by_run(db: Path) -> dict[str, list[int]]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("select run_id, epoch from epochs order by run_id, epoch").fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return {}
    out: dict[str, list[int]] = {}
    for run_id, epoch in rows:
        out.setdefault(run_id, []).append(epoch)
    return out


@pytest.mark.slow  # about 40 s: 4 runs trained twice over with 2 spawned workers
def test_own_networks_with_two_workers_kill_9_resume_report_and_edit(tmp_path):
    (tmp_path / "nets.py").write_text(NETS)
    study = tmp_path / "study.toml"
    # 2 seeds x (CoolNet with an option, boring): 4 runs of 8 epochs, batch 4 so an epoch takes a while
    study.write_text(STUDY.format(model="nets.py:CoolNet", options=", width = 4")
                     .replace("seeds = 1", "seeds = 2").replace("epochs = 1", "epochs = 8")
                     .replace("batch_size = 64", "batch_size = 4"))
    out = tmp_path / "out"
    db = out / "sweeplab.db"
    proc = subprocess.Popen([str(EXE), "run", str(study), "--out", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        end = time.monotonic() + 180
        while time.monotonic() < end and sum(map(len, epochs_by_run(db).values())) < 3:
            time.sleep(0.05)
        assert sum(map(len, epochs_by_run(db).values())) >= 3, "the study never got going"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # driver and both spawned workers
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    r = sweeplab("run", str(study), "--out", str(out), "--workers", "2", timeout=600)
    assert r.returncode == 0, r.stderr
    done = epochs_by_run(db)
    assert len(done) == 4 and all(e == list(range(1, 9)) for e in done.values()), done  # none lost or repeated

    r = sweeplab("report", "own", "--out", str(out), "--format", "md")
    assert r.returncode == 0, r.stderr
    assert "| Your code | nets.py sha256 " in (out / "reports" / "own" / "report.md").read_text()

    # edit CoolNet only: its 2 runs are trained again, the 2 boring runs are kept
    (tmp_path / "nets.py").write_text(NETS.replace("torch.relu", "torch.tanh"))
    r = sweeplab("run", str(study), "--out", str(out), "--workers", "2", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "4 runs (2 already done, 2 to train)" in r.stdout and "trained 2 runs" in r.stdout, r.stdout
    after = epochs_by_run(db)
    assert set(done) < set(after) and len(after) == 6


@pytest.mark.slow
@pytest.mark.cifar
@pytest.mark.timeout(1200)
def test_coolnet_example_smoke_runs(tmp_path, cifar10_env):
    example = tmp_path / "coolnet"
    shutil.copytree(ROOT / "examples" / "coolnet", example)  # run as a user would: from their own folder
    env = {"SWEEPLAB_OFFLINE": "1", "SWEEPLAB_DATA": str(tmp_path / "data"), **cifar10_env}
    r = sweeplab("run", "study.toml", "--smoke", "--out", "runs", "--workers", "2", env=env, cwd=example,
                 timeout=1200)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "study coolnet: 6 runs" in r.stdout and "completed 6" in r.stdout, r.stdout
    r = sweeplab("report", "coolnet", "--out", "runs", env=env, cwd=example)
    assert r.returncode == 0, r.stderr
    html = (example / "runs" / "reports" / "coolnet" / "report.html").read_text()
    assert "nets.py sha256" in html and "cool without BatchNorm" in html
