"""Issue 14, item 3: longer runs without starting over. A completed run whose config differs only
in ``epochs`` (fewer) and whose schedule does not depend on the total is continued from its last
checkpoint, to the same stored rows as training the longer run from scratch; a cosine schedule
or any other changed setting trains from scratch. Real runs on digits, a real store, and a real
``kill -9`` of the CLI during a continued run."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sweeplab.config import RunConfig
from sweeplab.resolve import run_id
from sweeplab.store import Store

from helpers import fit_recorded, sweeplab

pytestmark = pytest.mark.timeout(300)

#: Per-epoch measurements of the machine, not of the training: everything else must match.
TIMINGS = {"epoch_time_s", "train_images_per_s", "peak_mem_mb", "finished_at", "run_id"}


def _cfg(epochs: int, **changes) -> RunConfig:
    data = {"data": {"dataset": "digits"}, "model": {"name": "mlp", "hidden": [16]}, "epochs": epochs,
            "device": "cpu", "batch_size": 64, "seed": 3,
            "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "schedule": {"name": "step", "step_size": 2, "gamma": 0.5}}
    for key, value in changes.items():
        data[key] = value
    return RunConfig.model_validate(data)


def _rows(store: Store, rid: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in store.epochs(rid)]


def _weights(store: Store, rid: str, kind: str) -> tuple[int, dict]:
    epoch, blob = store.load_checkpoint(rid, kind)
    return epoch, torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)["model"]


def _trained_epochs(cfg: RunConfig, store: Store) -> tuple[object, list[int]]:
    """Fit the run; the result and the epochs this call trained itself (from progress events)."""
    trained: list[int] = []
    result = fit_recorded(cfg, store, progress=lambda ev, info: trained.append(info["epoch"]) if ev == "epoch" else None)
    return result, trained


def test_continuing_3_to_6_epochs_equals_training_6_from_scratch(tmp_path):
    with Store(tmp_path / "fresh.db") as fresh:
        fit_recorded(_cfg(6), fresh)
        want = _rows(fresh, run_id(_cfg(6)))
        want_last, want_best = _weights(fresh, run_id(_cfg(6)), "last"), _weights(fresh, run_id(_cfg(6)), "best")
    with Store(tmp_path / "s.db") as store:
        short, _ = _trained_epochs(_cfg(3), store)
        result, trained = _trained_epochs(_cfg(6), store)
        assert result.status == "completed" and trained == [4, 5, 6]
        assert result.continuation == f"continued from run {short.run_id} at epoch 3"
        assert _rows(store, result.run_id) == want  # every stored metric, to the last digit
        for (e1, w1), (e2, w2) in [(_weights(store, result.run_id, "last"), want_last),
                                   (_weights(store, result.run_id, "best"), want_best)]:
            assert e1 == e2 and all(torch.equal(w1[k], w2[k]) for k in w2)
        run = store.get_run(result.run_id)
        assert (run.continued_from, run.continued_epochs, run.epochs_done) == (short.run_id, 3, 6)
        assert len(store.epochs(short.run_id)) == 3  # the shorter run keeps its own rows


def test_early_stopping_continues_across_the_continuation(tmp_path):
    # min_delta 0.5 on test accuracy: only epoch 1 can be the best, so patience 3 stops at epoch 4;
    # the 3-epoch run completes before that, the 20-epoch run continuing it must stop at 4 exactly
    stop = {"patience": 3, "min_delta": 0.5}
    with Store(tmp_path / "fresh.db") as fresh:
        fit_recorded(_cfg(20, early_stop=stop), fresh)
        want = _rows(fresh, run_id(_cfg(20, early_stop=stop)))
    with Store(tmp_path / "s.db") as store:
        short, _ = _trained_epochs(_cfg(3, early_stop=stop), store)
        assert short.status == "completed" and short.detail is None
        result, trained = _trained_epochs(_cfg(20, early_stop=stop), store)
        assert trained == [4] and "stopped early at epoch 4, best at 1" in result.detail
        assert _rows(store, result.run_id) == want
        # a run that stopped early is a result too: a longer one stops again at once
        again, trained = _trained_epochs(_cfg(30, early_stop=stop), store)
        assert again.continuation == f"continued from run {result.run_id} at epoch 4"
        assert trained == [] and "stopped early at epoch 4, best at 1" in again.detail
        assert _rows(store, again.run_id) == want


@pytest.mark.parametrize("changes,reason", [
    ({"schedule": {"name": "cosine"}}, "trains from scratch: cosine depends on the total epochs"),
    ({"schedule": {"name": "onecycle"}}, "trains from scratch: onecycle depends on the total epochs"),
    ({"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9}}, None),  # another lr: another run family
])
def test_what_is_not_continued_trains_from_scratch(tmp_path, changes, reason):
    with Store(tmp_path / "s.db") as store:
        # with a total-dependent schedule the shorter run of the same family is there; with another
        # lr only the baseline's shorter run is
        fit_recorded(_cfg(2, **changes) if reason is not None else _cfg(2), store)
        result, trained = _trained_epochs(_cfg(3, **changes), store)
        assert result.status == "completed" and trained == [1, 2, 3]
        assert result.continuation == reason
        assert store.get_run(result.run_id).continued_from is None


@pytest.mark.slow
def test_the_cli_says_what_it_did(tmp_path):
    args = ["train", "--dataset", "digits", "--model", "mlp", "--set", "model.hidden=[16]", "--device", "cpu",
            "--out", str(tmp_path / "out"), "--set", "schedule.name=cosine"]
    assert sweeplab(*args, "--epochs", "2").returncode == 0
    r = sweeplab(*args, "--epochs", "3")
    assert r.returncode == 0 and "trains from scratch: cosine depends on the total epochs" in r.stdout, r.stdout


def _epoch_count(db: Path, rid: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select count(*) from epochs where run_id = ?", (rid,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_kill_9_during_a_continued_run_then_rerun_gives_the_same_result(tmp_path):
    out = tmp_path / "out"
    # batch 4: hundreds of steps per epoch, so the kill lands inside the continued epochs
    args = ["train", "--dataset", "digits", "--model", "mlp", "--set", "model.hidden=[16]", "--device", "cpu",
            "--out", str(out), "--batch-size", "4", "--seed", "3", "--lr", "0.01",
            "--set", "schedule.name=step", "--set", "schedule.step_size=2"]
    assert sweeplab(*args, "--epochs", "3").returncode == 0
    with Store(out / "sweeplab.db", readonly=True) as store:
        (short,) = store.list_runs()
        cfg = RunConfig.from_json(short.config_json).model_copy(update={"epochs": 6})
    long_id = run_id(cfg)
    exe = Path(sys.executable).parent / "sweeplab"
    proc = subprocess.Popen([str(exe), *args, "--epochs", "6"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.monotonic() + 180
        while time.monotonic() < end and _epoch_count(out / "sweeplab.db", long_id) < 4:
            time.sleep(0.02)
        assert 4 <= _epoch_count(out / "sweeplab.db", long_id) < 6, "the kill must land mid-continuation"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    r = sweeplab(*args, "--epochs", "6")
    assert r.returncode == 0 and "resumed after epoch" in r.stdout, r.stdout
    with Store(tmp_path / "fresh.db") as fresh:
        fit_recorded(cfg, fresh)
        want = _rows(fresh, long_id)
    with Store(out / "sweeplab.db", readonly=True) as store:
        run = store.get_run(long_id)
        assert run.status == "completed" and run.continued_from == short.id
        assert [row["epoch"] for row in store.epochs(long_id)] == list(range(1, 7))
        assert _rows(store, long_id) == want


@pytest.mark.slow
def test_a_study_run_with_more_epochs_continues_and_the_report_says_so(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(
        '[study]\nname = "longer"\nseeds = 1\n\n[baseline]\nepochs = 2\ndevice = "cpu"\n'
        'data = { dataset = "digits" }\nmodel = { name = "mlp", hidden = [16] }\n'
        'schedule = { name = "step", step_size = 1, gamma = 0.7 }\n\n'
        '[[arm]]\nname = "cosine"\nschedule = { name = "cosine" }\n')
    out = tmp_path / "out"
    assert sweeplab("run", str(study), "--out", str(out), "--workers", "1", cwd=tmp_path).returncode == 0
    r = sweeplab("run", str(study), "--out", str(out), "--epochs", "4", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    with Store(out / "sweeplab.db", readonly=True) as store:
        runs = {run.epochs_planned: [] for run in store.list_runs()}
        for run in store.list_runs():
            runs[run.epochs_planned].append(run)
        shorter = {RunConfig.from_json(r.config_json).schedule.name: r.id for r in runs[2]}
        longer = {RunConfig.from_json(r.config_json).schedule.name: r for r in runs[4]}
    assert longer["step"].continued_from == shorter["step"] and longer["cosine"].continued_from is None
    assert f"continued from run {shorter['step']} at epoch 2" in r.stdout
    assert "trains from scratch: cosine depends on the total epochs" in r.stdout
    from sweeplab.report.build import write_report

    written = write_report(out / "sweeplab.db", "longer", tmp_path / "report", "md", version=2)
    text = Path(written["md"]).read_text()
    assert f"continued from {shorter['step']} (epochs 1-2 shared)" in text
    assert text.count("continued from") == 1
    # the Python API: 6 epochs continue the 4-epoch run, which continued the 2-epoch one
    import pandas as pd
    import sweeplab as sl

    df = sl.run(str(study), out=out, epochs=6, workers=1)
    six = df.set_index("config.schedule.name")
    assert six.loc["step", "continued_from"] == longer["step"].id and six.loc["step", "continued_epochs"] == 4
    assert six.loc["step", "epochs_done"] == 6 and pd.isna(six.loc["cosine", "continued_from"])
    assert f"continued from run {longer['step'].id} at epoch 4" in capsys.readouterr().out


def test_store_continue_run_copies_rows_and_checkpoints_in_one_go(tmp_path):
    from sweeplab.store import EpochConflictError

    with Store(tmp_path / "s.db") as store:
        for rid in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"):
            store.upsert_run(rid, {"epochs": 2}, seed=0, epochs_planned=2)
        for epoch in (1, 2):
            store.commit_epoch("aaaaaaaaaaaa", epoch, {"test_acc": 0.5 * epoch, "test_confusion": [[epoch]]},
                               b"last%d" % epoch, b"best" if epoch == 1 else None)
        assert store.continue_run("bbbbbbbbbbbb", "aaaaaaaaaaaa") == 0  # not completed yet: nothing copied
        assert store.last_epoch("bbbbbbbbbbbb") == 0 and store.get_run("bbbbbbbbbbbb").continued_from is None
        store.set_status("aaaaaaaaaaaa", "completed")
        assert store.continue_run("bbbbbbbbbbbb", "aaaaaaaaaaaa", drop_from_last=["test_confusion"]) == 2
        rows = store.epochs("bbbbbbbbbbbb")
        assert [(r["epoch"], r["test_acc"], r.get("test_confusion")) for r in rows] == [(1, 0.5, [[1]]), (2, 1.0, None)]
        assert store.load_checkpoint("bbbbbbbbbbbb", "last") == (2, b"last2")
        assert store.load_checkpoint("bbbbbbbbbbbb", "best") == (1, b"best")
        run = store.get_run("bbbbbbbbbbbb")
        assert (run.continued_from, run.continued_epochs, run.epochs_done) == ("aaaaaaaaaaaa", 2, 2)
        with pytest.raises(EpochConflictError, match="already has epochs 1..2"):
            store.continue_run("bbbbbbbbbbbb", "aaaaaaaaaaaa")
        assert store.shorter_runs(0, 3)[0].id == "aaaaaaaaaaaa" and store.shorter_runs(0, 2) == []
        store.forget_run("bbbbbbbbbbbb")  # --fresh: no longer a continuation
        assert store.get_run("bbbbbbbbbbbb").continued_from is None
