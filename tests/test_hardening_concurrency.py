"""Issue 8, items 2, 5 and 6: concurrent drivers, a killed driver, Ctrl-C and SIGTERM.

Real `sweeplab run` subprocesses on tiny `digits` studies, real signals, a real SQLite store.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeplab.store import Store

from helpers import default_sigint, sweeplab

EXE = Path(sys.executable).parent / "sweeplab"

STUDY = """
[study]
name = "conc"
seeds = {seeds}
metric = "test_acc"

[baseline]
epochs = {epochs}
batch_size = {batch}
device = "cpu"
data = {{ dataset = "digits" }}
model = {{ name = "mlp", hidden = [16] }}
optim = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}

[[arm]]
name = "linear"
model = {{ name = "linear" }}
"""


def write_study(tmp_path: Path, seeds: int, epochs: int, batch: int) -> Path:
    p = tmp_path / "conc.toml"
    p.write_text(STUDY.format(seeds=seeds, epochs=epochs, batch=batch))
    return p


def start(study: Path, out: Path, workers: int, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(EXE), "run", str(study), "--out", str(out), "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"}, preexec_fn=default_sigint, **kw)


def query(db: Path, sql: str) -> list[tuple]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def n_epochs(db: Path) -> int:
    rows = query(db, "select count(*) from epochs")
    return rows[0][0] if rows else 0


def left(db: Path, runs: int) -> int:
    """How many of the study's ``runs`` are not completed yet (all of them before the store exists)."""
    rows = query(db, "select count(*) from runs where status = 'completed'")
    return min(2, runs - (rows[0][0] if rows else 0))


def wait_for(cond, timeout: float = 120, every: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    return False


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc/*/stat)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(d))
    return found


def workers_of(pid: int) -> list[int]:
    out = []
    for c in children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes():
                out.append(c)
        except OSError:
            pass
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def assert_complete(db: Path, runs: int, epochs: int) -> None:
    assert query(db, "select status, count(*) from runs group by status") == [("completed", runs)]
    assert query(db, "select run_id, epoch, count(*) from epochs group by run_id, epoch having count(*) > 1") == []
    per_run = query(db, "select run_id, count(*), max(epoch) from epochs group by run_id")
    assert len(per_run) == runs and all(n == epochs and m == epochs for _, n, m in per_run), per_run


def kill_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                p.kill()


# -- item 2: two or three drivers share one study ----------------------------------------------

@pytest.mark.parametrize("drivers,workers", [
    (2, 1), pytest.param(2, 2, marks=pytest.mark.slow), pytest.param(3, 1, marks=pytest.mark.slow),
    pytest.param(3, 2, marks=pytest.mark.slow),
])
def test_concurrent_drivers_share_the_runs_and_all_exit_0(tmp_path, drivers, workers):
    study = write_study(tmp_path, seeds=3, epochs=4, batch=8)  # 6 runs of about a second each
    out = tmp_path / "out"
    out.mkdir()
    Store(out / "sweeplab.db").close()  # the store exists before the race
    procs = [start(study, out, workers, start_new_session=True) for _ in range(drivers)]
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        kill_all(procs)
    for p, (stdout, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    db = out / "sweeplab.db"
    assert_complete(db, runs=6, epochs=4)
    assert query(db, "select count(*) from runs where status_detail is not null") == [(0,)]
    # every process's summary adds up to the study: each run trained by exactly one of them
    trained = sum(int(re.findall(r"trained (\d+) runs", stdout)[-1]) for stdout, _ in results)
    assert trained == 6, [s for s, _ in results]


# -- item 6: one Ctrl-C or SIGTERM always ends the study ------------------------------------------

@pytest.mark.parametrize("how,tries", [
    ("sigint-group", 1), ("sigterm-driver", 1),
    pytest.param("sigint-group", 6, marks=pytest.mark.slow), pytest.param("sigterm-driver", 5, marks=pytest.mark.slow),
])
def test_ctrl_c_and_sigterm_stop_workers_2_promptly(tmp_path, how, tries):
    epochs = 6 * tries  # 2 runs, long enough to interrupt them `tries` times
    study = write_study(tmp_path, seeds=1, epochs=epochs, batch=8)
    out = tmp_path / "out"
    db = out / "sweeplab.db"
    for attempt in range(tries):
        before = n_epochs(db)
        if left(db, 2) == 0:
            break  # the faster arm may finish early; the last tries then stop one worker, not two
        proc = start(study, out, 2, start_new_session=True)
        try:
            # one worker per run still to train, at most 2 (the linear arm can finish first)
            assert wait_for(lambda: n_epochs(db) >= before + 2 and 0 < len(workers_of(proc.pid)) == left(db, 2)), \
                "the study never got going"
            pids = workers_of(proc.pid)
            time.sleep(0.05 * attempt)  # a different moment of an epoch each time
            if how == "sigint-group":
                os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
            else:
                os.kill(proc.pid, signal.SIGTERM)
            t0 = time.monotonic()
            _, err = proc.communicate(timeout=20)
            assert time.monotonic() - t0 < 20
        finally:
            kill_all([proc])  # the whole session, workers too
        assert proc.returncode == (130 if how == "sigint-group" else 143), err
        assert "Traceback" not in err and "leaked" not in err, err
        assert wait_for(lambda: not any(alive(p) for p in pids), timeout=5), "workers outlived the driver"
        statuses = dict(query(db, "select status, count(*) from runs group by status"))
        assert "running" not in statuses and statuses.get("interrupted", 0) >= 1, statuses
    r = sweeplab("run", str(study), "--out", str(out), "--workers", "2", timeout=300)
    assert r.returncode == 0, r.stderr
    assert_complete(db, runs=2, epochs=epochs)


# -- item 5: workers die with a killed driver ------------------------------------------------------

def test_workers_exit_when_the_driver_is_killed(tmp_path):
    study = write_study(tmp_path, seeds=1, epochs=12, batch=4)
    out = tmp_path / "out"
    db = out / "sweeplab.db"
    proc = start(study, out, 2, start_new_session=True)
    pids: list[int] = []
    try:
        assert wait_for(lambda: n_epochs(db) >= 2 and len(workers_of(proc.pid)) == 2)
        pids = workers_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as the OOM killer does
        proc.wait(timeout=10)
        assert wait_for(lambda: not any(alive(p) for p in pids), timeout=5), "workers outlived the driver"
    finally:
        kill_all([proc])  # the whole session: orphaned workers too
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)
    r = sweeplab("run", str(study), "--out", str(out), "--workers", "2", timeout=300)
    assert r.returncode == 0, r.stderr
    assert_complete(db, runs=2, epochs=12)


def test_a_driver_takes_over_the_runs_another_one_drops(tmp_path):
    # B waits for the runs A holds; when A is stopped with Ctrl-C, B trains them itself
    study = write_study(tmp_path, seeds=2, epochs=6, batch=4)
    out = tmp_path / "out"
    db = out / "sweeplab.db"
    out.mkdir()
    Store(db).close()
    a = start(study, out, 1, start_new_session=True)
    b = start(study, out, 1, start_new_session=True)
    try:
        held = "select count(distinct worker) from runs where status = 'running'"
        assert wait_for(lambda: (query(db, held) or [(0,)])[0][0] == 2), "the two drivers never both trained"
        os.killpg(a.pid, signal.SIGINT)
        _, err_a = a.communicate(timeout=20)
        _, err_b = b.communicate(timeout=300)
    finally:
        kill_all([a, b])
    assert a.returncode == 130, err_a
    assert b.returncode == 0, err_b
    assert_complete(db, runs=4, epochs=6)


def test_only_the_claiming_worker_changes_a_run_and_never_a_finished_one(tmp_path):
    from sweeplab.store.claims import claim

    with Store(tmp_path / "s.db") as store:
        for run_id in ("r1", "r2"):
            store.upsert_run(run_id, {"run": run_id}, 0, epochs_planned=1)
        assert claim(store, "r1", "host:1")[0] and not claim(store, "r1", "host:2")[0]
        assert store.set_status("r1", "failed", "epoch 1 is already recorded", owner="host:2").status == "running"
        assert store.set_status("r1", "completed", owner="host:1").status == "completed"
        assert store.set_status("r1", "failed", "late loser", owner="host:1").status == "completed"
        assert not claim(store, "r1", "host:2")[0]
        assert claim(store, "r2", "host:3")[0]
        assert store.mark_interrupted(["r1", "r2"], "Ctrl-C", workers=["host:1"]) == []  # not theirs
        assert store.mark_interrupted(["r1", "r2"], "Ctrl-C", workers=["host:3"]) == ["r2"]
