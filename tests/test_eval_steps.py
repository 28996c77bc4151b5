"""Issue 14, item 5: evaluation every N steps (``eval_every_steps``). Step rows every N global
steps, committed with their epoch; epoch rows the same as without the option; curves against the
step in reports, ``step/`` scalars in TensorBoard, ``export --table steps``; resume after
``kill -9`` leaves no duplicate and no missing step rows; bad values are one line, exit 2.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sweeplab as sl
from sweeplab.cli.main import main
from sweeplab.config import RunConfig
from sweeplab.report import build_report
from sweeplab.report.canvas import styles
from sweeplab.report.step_figures import step_curve_figure
from sweeplab.resolve import build_run_config, run_id
from sweeplab.store import EpochConflictError, Store

from helpers import sweeplab

pytestmark = pytest.mark.timeout(120)

BATCH = 64
# digits: 1,437 training images, 200 of them carved off for validation -> 1,237 to train on
STUDY = """
[study]
name = "evalsteps"
seeds = 2
[baseline]
epochs = 2
device = "cpu"
batch_size = 64
data = { dataset = "digits", val_size = 200 }
model = { name = "mlp", hidden = [16], dropout = 0.2 }
[[arm]]
name = "every10"
eval_every_steps = 10
[[arm]]
name = "every_epoch"
eval_every_steps = 20
"""
TRAINING = ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "lr", "lr_mean",
            "test_per_class_acc", "test_confusion")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study trained once (6 tiny runs, in this process) with TensorBoard output."""
    root = tmp_path_factory.mktemp("evalsteps")
    (root / "s.toml").write_text(STUDY)
    out = root / "out"
    assert main(["run", str(root / "s.toml"), "--out", str(out), "--workers", "1", "--tensorboard"]) == 0
    with Store(out / "sweeplab.db", readonly=True) as store:
        links = store.study_runs("evalsteps")
        runs = {(l.arm, l.seed): (store.get_run(l.run_id), store.epochs(l.run_id), store.steps(l.run_id))
                for l in links}
    return out, runs


def _batch_sizes(n_train: int, steps_per_epoch: int) -> list[int]:
    return [BATCH] * (steps_per_epoch - 1) + [n_train - BATCH * (steps_per_epoch - 1)]


def test_step_rows_come_every_n_global_steps_with_the_loss_since_the_last(study):
    _, runs = study
    for seed in (0, 1):
        run, epochs, steps = runs[("every10", seed)]
        spe, n_train = run.env["steps_per_epoch"], run.env["n_train"]
        assert spe == math.ceil(n_train / BATCH) == 20, "precondition: evaluation windows end at epoch ends"
        assert [s["step"] for s in steps] == list(range(10, 2 * spe + 1, 10))
        assert [s["epoch"] for s in steps] == [(s["step"] - 1) // spe + 1 for s in steps]
        assert all(s["val_acc"] is not None and s["test_acc"] is not None for s in steps)
        # train_loss is the mean over the steps since the previous evaluation: weighted by the
        # samples of each window, they give back each epoch's mean training loss
        sizes = _batch_sizes(n_train, spe) * 2
        for e, row in enumerate(epochs, 1):
            mine = [s for s in steps if s["epoch"] == e]
            starts = [0] + [s["step"] for s in steps][:-1]
            weights = {s["step"]: sum(sizes[a:s["step"]]) for a, s in zip(starts, steps)}
            mean = sum(s["train_loss"] * weights[s["step"]] for s in mine) / n_train
            assert mean == pytest.approx(row["train_loss"], rel=1e-9)
    assert runs[("baseline", 0)][2] == []  # without the option: no step rows


def test_an_evaluation_at_an_epoch_end_equals_the_epoch_row(study):
    _, runs = study
    run, epochs, steps = runs[("every_epoch", 0)]
    assert run.env["steps_per_epoch"] == 20, "precondition: eval_every_steps = 20 is one epoch"
    assert [(s["step"], s["epoch"]) for s in steps] == [(20, 1), (40, 2)]
    for s, e in zip(steps, epochs):
        assert (s["test_acc"], s["test_loss"], s["val_acc"], s["val_loss"], s["lr"]) == pytest.approx(
            (e["test_acc"], e["test_loss"], e["val_acc"], e["val_loss"], e["lr"]), rel=1e-6)
        assert s["train_loss"] == pytest.approx(e["train_loss"], rel=1e-9)


def test_epoch_rows_are_those_of_a_run_without_the_option(study):
    _, runs = study
    for seed in (0, 1):
        plain = runs[("baseline", seed)][1]
        for arm in ("every10", "every_epoch"):
            rows = runs[(arm, seed)][1]
            assert len(rows) == len(plain) == 2
            for a, b in zip(plain, rows):  # dropout 0.2: evaluation must not draw from the training RNG
                assert {k: a.get(k) for k in TRAINING} == {k: b.get(k) for k in TRAINING}
    # and the seeds differ, so equal rows are not a coincidence of a constant
    assert runs[("baseline", 0)][1][0]["train_loss"] != runs[("baseline", 1)][1][0]["train_loss"]


def test_the_step_figure_draws_each_setting_s_mean_against_the_step(study):
    out, runs = study
    with Store(out / "sweeplab.db", readonly=True) as store:
        report = build_report(store, "evalsteps", with_figures=False)
    fig = step_curve_figure(report.settings, "test", styles(report.settings))
    assert fig.name == "steps_test" and fig.section == "curves"
    ax_acc, ax_loss = fig.mpl.axes[:2]
    assert ax_acc.get_xlabel().startswith("step") and "accuracy" in ax_acc.get_ylabel()
    assert "loss" in ax_loss.get_ylabel()
    lines = {line.get_label(): line for line in ax_acc.get_lines()}
    assert set(lines) == {"every10", "every_epoch"}  # the baseline has no step rows
    steps = [runs[("every10", seed)][2] for seed in (0, 1)]
    assert list(lines["every10"].get_xdata()) == [s["step"] for s in steps[0]]
    mean = [100 * (a["test_acc"] + b["test_acc"]) / 2 for a, b in zip(*steps)]
    assert list(lines["every10"].get_ydata()) == pytest.approx(mean)
    baseline = [s for s in report.settings if s.arm == "baseline"]
    assert step_curve_figure(baseline, "test", styles(baseline)) is None


@pytest.mark.slow
def test_the_report_shows_test_and_val_against_the_step_among_the_curves(study, tmp_path):
    out, _ = study
    files = sl.report("evalsteps", out, output_dir=tmp_path / "report", formats="md")
    assert {"figure:steps_test", "figure:steps_val"} <= set(files)
    md = files["md"].read_text()
    curves = md[md.index("## Curves"):md.index("\n## ", md.index("## Curves") + 1)]
    assert "figures/steps_test.png" in curves and "figures/steps_val.png" in curves
    assert "every 10 or 20 steps" in curves


def test_tensorboard_has_the_step_scalars(study):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, runs = study
    run, _, steps = runs[("every10", 1)]
    (folder,) = [p for p in (out / "tensorboard").iterdir() if p.name.endswith(run.id)]
    acc = EventAccumulator(str(folder))
    acc.Reload()
    assert {"step/train_loss", "step/test_acc", "step/test_loss", "step/val_acc", "step/lr"} <= set(acc.Tags()["scalars"])
    events = acc.Scalars("step/test_acc")
    assert [e.step for e in events] == [s["step"] for s in steps]
    assert [e.value for e in events] == pytest.approx([s["test_acc"] for s in steps], rel=1e-6)


def test_export_and_the_python_api_give_the_step_rows(study, capsys):
    out, runs = study
    capsys.readouterr()
    assert main(["export", "evalsteps", "--out", str(out), "--table", "steps"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    expected = sum(len(runs[(arm, seed)][2]) for arm in ("every10", "every_epoch") for seed in (0, 1))
    assert len(rows) == expected
    first = runs[("every10", 0)][2][0]
    mine = [r for r in rows if r["arm"] == "every10" and r["seed"] == "0"][0]
    assert (int(mine["step"]), float(mine["test_acc"])) == (first["step"], pytest.approx(first["test_acc"]))
    assert main(["export", "evalsteps", "--out", str(out), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["steps"]) == expected
    df = sl.steps("evalsteps", out)
    assert len(df) == expected and set(df["arm"]) == {"every10", "every_epoch"}


def test_existing_configs_keep_their_run_ids():
    # ids computed by sweeplab before eval_every_steps existed (commit 209bac0)
    plain = {"data": {"dataset": "digits"}, "model": {"name": "mlp", "hidden": [16]}, "epochs": 2}
    assert run_id(build_run_config(plain)) == "9dfd115aeb25"
    stopping = {"data": {"dataset": "digits", "val_size": 200}, "epochs": 2, "early_stop": {"patience": 3},
                "model": {"name": "mlp", "hidden": [16], "dropout": 0.2}}
    assert run_id(build_run_config(stopping)) == "550455477996"
    assert "eval_every_steps" not in RunConfig().canonical()
    every = build_run_config({**plain, "eval_every_steps": 500})
    assert run_id(every) != "9dfd115aeb25" and RunConfig.from_json(every.to_json()) == every


def test_step_rows_commit_with_their_epoch_or_not_at_all(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.upsert_run("r1", config_json="{}", seed=0)
        store.commit_epoch("r1", 1, {"train_loss": 1.0}, b"ck1", steps=[{"step": 5, "test_acc": 0.5},
                                                                       {"step": 10, "test_acc": 0.6}])
        with pytest.raises(EpochConflictError):  # a step the run already has: epoch 2 is not committed either
            store.commit_epoch("r1", 2, {"train_loss": 0.5}, b"ck2", steps=[{"step": 10, "test_acc": 0.7}])
        assert store.last_epoch("r1") == 1 and [s["step"] for s in store.steps("r1")] == [5, 10]
        with pytest.raises(ValueError, match="unknown step metric"):
            store.commit_epoch("r1", 2, {}, b"ck2", steps=[{"step": 15, "test_accuracy": 0.7}])
        store.commit_epoch("r1", 2, {"train_loss": 0.5}, b"ck2", steps=[{"step": 15, "test_acc": 0.7}])
        assert [(s["step"], s["epoch"], s["test_acc"]) for s in store.steps("r1")] == [
            (5, 1, 0.5), (10, 1, 0.6), (15, 2, 0.7)]
        assert store.forget_run("r1") and store.steps("r1") == []


def test_a_longer_run_continued_from_a_shorter_one_has_the_step_rows_of_one_from_scratch(tmp_path):
    base = ["train", "--dataset", "digits", "--model", "mlp", "--set", "model.hidden=[16]", "--device", "cpu",
            "--batch-size", "64", "--set", "eval_every_steps=9"]  # 23 steps an epoch: windows cross epochs
    for out, epochs in (("cont", 2), ("cont", 3), ("scratch", 3)):
        assert main([*base, "--epochs", str(epochs), "--out", str(tmp_path / out)]) == 0

    def steps_of(out: str) -> list[tuple]:
        with Store(tmp_path / out / "sweeplab.db", readonly=True) as store:
            (run,) = [r for r in store.list_runs() if r.epochs_planned == 3]
            return [tuple(v for k, v in s.items() if k not in ("run_id", "finished_at")) for s in store.steps(run.id)]

    cont, scratch = steps_of("cont"), steps_of("scratch")
    assert [s[0] for s in scratch] == list(range(9, 3 * 23 + 1, 9))
    assert cont == scratch


@pytest.mark.parametrize("value,expected", [
    ("0", "eval_every_steps: Input should be greater than or equal to 1"),
    ("-5", "eval_every_steps: Input should be greater than or equal to 1"),
    ("2.5", "eval_every_steps: Input should be a valid integer"),
    ('"often"', "eval_every_steps: Input should be a valid integer"),
])
def test_bad_values_are_one_line_exit_2(tmp_path, capsys, value, expected):
    rc = main(["train", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "out"),
               "--set", f"eval_every_steps={value}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out" / "sweeplab.db").exists()


def test_a_run_that_would_evaluate_more_than_the_limit_is_refused_when_its_data_is_known(tmp_path, capsys):
    from sweeplab.config.schema import MAX_STEP_EVALS

    # 100 examples in batches of 1: 100 steps an epoch, so 1,001 epochs evaluated every step is
    # 100,100 evaluations (over the limit), 1,000 epochs exactly the limit.
    base = ["train", "--dataset", "digits", "--model", "mlp", "--set", "model.hidden=[4]", "--device", "cpu",
            "--batch-size", "1", "--set", "data.train_subset=100", "--set", "data.test_subset=10",
            "--set", "eval_every_steps=1", "--out", str(tmp_path / "out")]
    rc = main([*base, "--epochs", "1001"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "eval_every_steps" in err and "100,100 evaluations" in err and f"{MAX_STEP_EVALS:,}" in err, err
    with Store(tmp_path / "out" / "sweeplab.db", readonly=True) as store:
        (run,) = store.list_runs()
        assert run.status == "failed" and store.last_epoch(run.id) == 0 and "100,100" in run.status_detail


def test_a_bad_value_in_a_study_file_names_its_arm(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(STUDY.replace("eval_every_steps = 10", "eval_every_steps = 0"))
    rc = main(["run", str(study), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "eval_every_steps" in err and "every10" in err, err
    assert not (tmp_path / "out" / "sweeplab.db").exists()


def _rows(db: Path, table: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        skip = {"finished_at", "epoch_time_s", "train_images_per_s", "peak_mem_mb", "run_id"}
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})") if r[1] not in skip]
        order = "step" if table == "steps" else "epoch"
        return con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}").fetchall()
    finally:
        con.close()


def _count(db: Path, table: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_mid_run_then_rerun_gives_the_rows_of_an_uninterrupted_run(tmp_path):
    # batch 2: 719 steps an epoch, so the kill lands inside a run of 4 epochs; every 100 steps:
    # evaluation windows cross epoch ends, and the checkpoint must carry them over
    args = ["train", "--dataset", "digits", "--model", "mlp", "--set", "model.hidden=[16]", "--epochs", "4",
            "--device", "cpu", "--batch-size", "2", "--set", "eval_every_steps=100"]
    killed = tmp_path / "killed"
    exe = Path(sys.executable).parent / "sweeplab"
    proc = subprocess.Popen([str(exe), *args, "--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    db = killed / "sweeplab.db"
    try:
        end = time.monotonic() + 300
        while time.monotonic() < end and _count(db, "epochs") < 1:
            time.sleep(0.02)
        time.sleep(0.3)  # into the next epoch, past some of its evaluations
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done = _count(db, "epochs")
    assert 1 <= done < 4, "the kill must land after an epoch and before the end"
    assert _count(db, "steps") == len(range(100, done * 719 + 1, 100))  # only committed epochs' steps
    r = sweeplab(*args, "--out", str(killed), timeout=600)
    assert r.returncode == 0 and f"resumed after epoch {done}" in r.stdout, r.stdout + r.stderr
    r = sweeplab(*args, "--out", str(tmp_path / "whole"), timeout=600)
    assert r.returncode == 0, r.stderr
    whole = tmp_path / "whole" / "sweeplab.db"
    steps = _rows(db, "steps")
    assert [s[0] for s in steps] == list(range(100, 4 * 719 + 1, 100))  # none missing, none twice
    assert steps == _rows(whole, "steps")
    assert _rows(db, "epochs") == _rows(whole, "epochs")
