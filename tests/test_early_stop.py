"""Issue 14, item 2: early stopping as a run option. A run that stops is ``completed`` with the
reason in its detail; a resumed run continues the patience count exactly; bad values are one line.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeplab.cli.main import main
from sweeplab.store import Store
from sweeplab.train.early_stop import stop_after

from helpers import sweeplab


@pytest.mark.parametrize("values,metric,patience,min_delta,expected", [
    ([0.5, 0.6, 0.7], "test_acc", 1, 0.0, None),              # improving: go on
    ([0.5, 0.6, 0.6], "test_acc", 1, 0.0, 2),                 # equal is not better
    ([0.5, 0.6, 0.61, 0.62], "test_acc", 2, 0.05, 2),         # small gains below min_delta do not count
    ([1.0, 0.8, 0.9, 0.85], "val_loss", 2, 0.0, 2),           # losses: lower is better
    ([1.0, 0.8, 0.9, 0.7], "val_loss", 2, 0.0, None),         # a new best resets the count
    ([0.5, None, float("nan")], "test_acc", 2, 0.0, 1),       # missing or nan: no improvement
    ([], "test_acc", 1, 0.0, None),
])
def test_stop_after_follows_keras_and_lightning(values, metric, patience, min_delta, expected):
    assert stop_after(values, metric, patience, min_delta) == expected


def _train_args(out: Path, epochs: int, batch: int = 64) -> list[str]:
    # min_delta 0.5 on test accuracy: only epoch 1 can ever be the best, so the stop is known in advance
    return ["train", "--dataset", "digits", "--model", "mlp", "--epochs", str(epochs), "--out", str(out),
            "--device", "cpu", "--batch-size", str(batch),
            "--set", "early_stop.patience=3", "--set", "early_stop.min_delta=0.5"]


def _the_run(out: Path):
    with Store(out / "sweeplab.db", readonly=True) as store:
        (run,) = store.list_runs()
        return run, [r["epoch"] for r in store.epochs(run.id)]


def test_a_run_that_stops_early_is_completed_with_the_reason(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_train_args(out, epochs=20)) == 0
    run, epochs = _the_run(out)
    assert run.status == "completed" and epochs == [1, 2, 3, 4]
    detail = json.loads(run.status_detail)
    assert detail["reason"] == "stopped early at epoch 4, best at 1 (test_acc, patience 3, min_delta 0.5)"
    # and the CLI does not train it again
    assert main(_train_args(out, epochs=20)) == 0
    assert _the_run(out)[1] == [1, 2, 3, 4]


def test_resume_after_kill_9_continues_the_patience_count(tmp_path):
    out = tmp_path / "out"
    exe = Path(sys.executable).parent / "sweeplab"
    # batch 2: hundreds of steps per epoch, so the kill lands after epoch 2 and before the stop
    proc = subprocess.Popen([str(exe), *_train_args(out, epochs=20, batch=2)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    db = out / "sweeplab.db"

    def epochs_done() -> int:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                return con.execute("select count(*) from epochs").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return 0

    try:
        end = time.monotonic() + 180
        while time.monotonic() < end and epochs_done() < 2:
            time.sleep(0.05)
        assert epochs_done() in (2, 3), "the kill must land before the stop"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    r = sweeplab(*_train_args(out, epochs=20, batch=2), timeout=600)
    assert r.returncode == 0, r.stderr
    run, epochs = _the_run(out)
    assert epochs == [1, 2, 3, 4] and "stopped early at epoch 4, best at 1" in run.status_detail


@pytest.mark.parametrize("setting,expected", [
    ("early_stop.patience=0", "early_stop.patience: Input should be greater than or equal to 1"),
    ("early_stop.metric=acc", "early_stop.metric: must be one of test_acc"),
    ("early_stop.min_delta=-1", "early_stop.min_delta: Input should be greater than or equal to 0"),
    ("early_stop.metric=val_acc", "early_stop watches val_acc, which needs a validation split"),
    ("early_stop.wait=3", "early_stop.wait: unknown key"),
])
def test_bad_early_stop_settings_are_one_line_exit_2(tmp_path, capsys, setting, expected):
    rc = main(["train", "--dataset", "digits", "--epochs", "2", "--out", str(tmp_path / "out"), "--set", setting])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out" / "sweeplab.db").exists()
