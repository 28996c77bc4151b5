"""End to end: real data, real training, real SQLite rows."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sweeplab.store import Store
from sweeplab.resolve import build_run_config

from helpers import fit_recorded, sweeplab

TIMING = {"epoch_time_s", "train_images_per_s", "peak_mem_mb", "finished_at"}


def digits_cfg(**over):
    base = {"epochs": 4, "batch_size": 32, "data": {"dataset": "digits"}, "model": {"name": "mlp", "hidden": [64]},
            "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "device": "cpu"}
    base.update(over)
    return build_run_config(base)


def test_digits_learns_well_above_chance(tmp_path):
    with Store(tmp_path / "s.db") as store:
        res = fit_recorded(digits_cfg(), store)
    assert res.status == "completed"
    assert [r["epoch"] for r in res.epochs] == [1, 2, 3, 4]
    assert res.epochs[-1]["test_acc"] > 0.85  # chance is 0.10
    assert res.epochs[-1]["train_loss"] < res.epochs[0]["train_loss"]


def test_same_seed_same_curves_and_other_seed_differs(tmp_path):
    rows = []
    for i, seed in enumerate((3, 3, 4)):
        with Store(tmp_path / f"s{i}.db") as store:
            res = fit_recorded(digits_cfg(seed=seed, data={"dataset": "digits", "augment": {"crop_padding": 1}}), store)
        rows.append([{k: v for k, v in r.items() if k not in TIMING} for r in res.epochs])
    assert rows[0] == rows[1]
    assert rows[0] != rows[2]


def test_rerun_of_finished_run_is_not_retrained(tmp_path):
    with Store(tmp_path / "s.db") as store:
        first = fit_recorded(digits_cfg(epochs=2), store)
        again = fit_recorded(digits_cfg(epochs=2), store)
    assert not first.skipped and again.skipped
    assert again.epochs == first.epochs


def test_divergence_is_recorded_at_the_right_epoch(tmp_path):
    # lr is tame for two epochs, then multiplied by 1e12 from epoch 3: the loss must blow up there.
    cfg = digits_cfg(epochs=5, optim={"name": "sgd", "lr": 0.05},
                     schedule={"name": "multistep", "milestones": [2], "gamma": 1e12})
    with Store(tmp_path / "s.db") as store:
        res = fit_recorded(cfg, store)
        run = store.get_run(res.run_id)
    assert res.status == run["status"] == "diverged"
    detail = json.loads(run["status_detail"])
    assert detail["epoch"] == 3
    assert [r["epoch"] for r in res.epochs] == [1, 2]


def test_cli_diverged_run_exits_normally(tmp_path):
    # MSE gradients grow with the error, so a huge lr overflows to inf within a few steps.
    r = sweeplab("train", "--dataset", "digits", "--model", "linear", "--epochs", "3", "--lr", "1e10", "--set", "loss.name=mse",
                 "--device", "cpu", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "diverged" in r.stdout
    con = sqlite3.connect(tmp_path / "sweeplab.db")
    assert con.execute("select status from runs").fetchall() == [("diverged",)]


def test_val_split_is_recorded(tmp_path):
    cfg = digits_cfg(epochs=2, data={"dataset": "digits", "val_size": 200})
    with Store(tmp_path / "s.db") as store:
        res = fit_recorded(cfg, store)
    assert all(r["val_acc"] is not None and r["val_loss"] is not None for r in res.epochs)
    assert len(res.epochs[-1]["test_per_class_acc"]) == 10
    cm = res.epochs[-1]["test_confusion"]
    assert sum(map(sum, cm)) == 360  # every test example counted once


@pytest.mark.cifar
def test_cifar10_subset_run_writes_rows(tmp_path, cifar10_env):
    r = sweeplab("train", "--dataset", "cifar10", "--model", "tutorial_cnn", "--epochs", "2", "--batch-size", "32",
                 "--lr", "0.01", "--device", "cpu", "--set", "data.train_subset=2000", "--set", "data.test_subset=500",
                 "--set", "data.augment.crop_padding=4", "--set", "data.augment.hflip=true",
                 "--out", str(tmp_path), env=cifar10_env)
    assert r.returncode == 0, r.stderr + r.stdout
    con = sqlite3.connect(tmp_path / "sweeplab.db")
    run = con.execute("select id, status, data_source, data_checksum, params, config_json from runs").fetchone()
    assert run[1] == "completed"
    assert "cifar10-jpeg" in run[2] and len(run[3]) == 64
    assert run[4] == 62006
    assert json.loads(run[5])["model"]["name"] == "tutorial_cnn"
    rows = con.execute("select epoch, train_loss, test_acc, lr from epochs where run_id=? order by epoch",
                       (run[0],)).fetchall()
    assert [r[0] for r in rows] == [1, 2]
    assert all(r[1] > 0 and 0 <= r[2] <= 1 and r[3] == 0.01 for r in rows)
    ck = con.execute("select kind, epoch from checkpoints where run_id=? order by kind", (run[0],)).fetchall()
    assert ("last", 2) in ck
