"""Hardening of configs and study files (issue 8, items 1, 10, 11, 12 and the defaults of `train`).

Every bad input is refused before anything runs, in one line naming the key, with exit code 2;
every accepted config reaches a worker exactly as it was validated.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import sweeplab
from sweeplab.cli.main import main
from sweeplab.config import RunConfig
from sweeplab.config.load import flatten, set_path
from sweeplab.errors import ConfigError
from sweeplab.study import load_study
from sweeplab.train.task import RunTask
from sweeplab.resolve import build_run_config, run_id

STUDY = """
[study]
name = "hard"
seeds = 1
[baseline]
epochs = 1
data = {{ dataset = "digits", train_subset = 200 }}
model = {{ name = "mlp", hidden = [16] }}
{extra}
"""


def _study(tmp_path, extra: str = "", name: str = "s.toml"):
    p = tmp_path / name
    p.write_text(STUDY.format(extra=extra))
    return p


def _one_line_error(r, *needles: str) -> str:
    """Exit 2, no traceback, one line on stderr that contains every needle."""
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _in_process(capfd, *argv: str) -> subprocess.CompletedProcess:
    """The real CLI entry point in this process (no interpreter start-up per case); an uncaught
    exception fails the test."""
    capfd.readouterr()
    code = main(list(argv))
    captured = capfd.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


# -- item 1: non-finite values and a lossless hand-over ----------------------------------------------
@pytest.mark.parametrize("baseline, key", [
    ('grad_clip = inf\ndata = { dataset = "digits" }', "baseline.grad_clip"),
    ('data = { dataset = "digits" }\noptim = { lr = inf }', "baseline.optim.lr"),
    ('data = { dataset = "digits" }\noptim = { lr = nan }', "baseline.optim.lr"),
    ('data = { dataset = "moons", noise = inf }', "baseline.data.noise"),
    ('data = { dataset = "digits" }\nmodel = { name = "mlp", dropout = nan }', "dropout"),
])
def test_non_finite_values_are_refused_at_parse_time(tmp_path, capfd, baseline, key):
    p = tmp_path / "s.toml"
    p.write_text(f'[study]\nname = "nf"\n[baseline]\nepochs = 1\n{baseline}\n')
    r = _in_process(capfd, "run", str(p), "--out", str(tmp_path / "out"))
    assert "finite" in _one_line_error(r, key)
    assert not (tmp_path / "out" / "sweeplab.db").exists()


#: Leaves of a config and the values a fuzzer tries there: every type the schema might see.
_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, 5e-324, -0.0, 0.5, 1.0]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=40),
    st.booleans(),
    st.sampled_from(["max", "sgd", "adam", "cosine", "mse", "cpu", "2", "1e3", "", "relu", "test_loss", "val_acc"]),
    st.lists(st.one_of(st.integers(-3, 300), st.floats(allow_nan=True)), max_size=3),
)
#: canonical() leaves out the optional keys a default config does not use: they are added by hand.
_LEAVES = sorted(k for k in flatten(RunConfig().canonical()) if k != "threads") + [
    "model.hidden", "model.dropout", "model.activation", "model.batchnorm",
    "eval_every_steps", "early_stop.metric", "early_stop.patience", "early_stop.min_delta"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_LEAVES), _VALUES, min_size=1, max_size=4))
def test_every_accepted_config_survives_the_hand_over_to_a_worker(changes):
    data: dict = {}
    for key, value in changes.items():
        set_path(data, key, value)
    try:
        cfg = build_run_config(data)
    except ConfigError:
        return  # refused with a one-line error: the CLI tests check the message
    # The study hands this string to the worker (study/execute.py); the worker rebuilds from it.
    task = RunTask(config_json=cfg.to_json(), store_path="unused")
    back = RunConfig.from_json(task.config_json)
    assert back == cfg
    assert run_id(back) == run_id(cfg)
    assert back.to_json() == task.config_json
    json.loads(task.config_json)  # strict JSON: no NaN/Infinity tokens


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A study with one finished run, shared by the tests that must leave its store unchanged."""
    tmp = tmp_path_factory.mktemp("trained")
    study, out = _study(tmp), tmp / "out"
    assert sweeplab("run", str(study), "--out", str(out)).returncode == 0
    return study, out


# -- item 12: validate before anything runs ------------------------------------------------------------
@pytest.mark.parametrize("setting, needles", [
    ("data.dataset=nope", ["data.dataset", "nope", "digits"]),
    ("model.activation=relu6", ["model.activation", "relu6", "gelu"]),
    ('model.hidden="wide"', ["model.hidden", "wide", "integers"]),
    ("model.hidden=[0]", ["model.hidden", "[0]"]),
    ("model.hidden=[-4]", ["model.hidden", "[-4]"]),
    ('epochs="2"', ["epochs", "'2'", "integer"]),
    ("max_batch_size=1e3", ["max_batch_size", "1000.0", "integer"]),
    ("model.hidden=[16,", ["--set model.hidden", "[16,"]),
    ("data.random_state=-1", ["data.random_state", "-1"]),
    ("data.random_state=5000000000", ["data.random_state", "5000000000"]),
    ("epochs=100000000000000000000", ["epochs"]),
])
def test_bad_values_fail_before_any_run_and_leave_the_store_unchanged(trained, capfd, setting, needles):
    study, out = trained
    before = (out / "sweeplab.db").read_bytes()
    _one_line_error(_in_process(capfd, "run", str(study), "--out", str(out), "--set", setting), *needles)
    assert (out / "sweeplab.db").read_bytes() == before
    with sqlite3.connect(out / "sweeplab.db") as conn:
        assert conn.execute("select count(*), min(status) from runs").fetchone() == (1, "completed")


def test_an_unknown_model_is_blamed_on_its_name_not_on_its_options(tmp_path):
    r = sweeplab("train", "--out", str(tmp_path), "--set", "model.name=nope", "--set", "model.hidden=[16]")
    _one_line_error(r, "model.name", "'nope'", "mlp")


def test_model_option_values_are_checked_in_every_arm_of_a_study(tmp_path):
    study = _study(tmp_path, '[[arm]]\nname = "act"\nmodel = { activation = ["relu", "sigmoidish"] }\n')
    r = sweeplab("run", str(study), "--dry-run", "--out", str(tmp_path / "out"))
    _one_line_error(r, "arm 'act'.model.activation", "sigmoidish")


def test_study_file_values_are_not_coerced(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(STUDY.format(extra="").replace("epochs = 1", 'epochs = "2"'))
    _one_line_error(sweeplab("run", str(p), "--dry-run"), "baseline.epochs", "integer")


# -- item 10: size limits ----------------------------------------------------------------------------
@pytest.mark.parametrize("extra, needles", [
    ('[[arm]]\nname = "huge"\noptim = { lr = [' + ", ".join(f"0.{i + 1:04d}" for i in range(1000))
     + "] }\nmodel = { hidden = [" + ", ".join(f"[{i + 1}]" for i in range(1000)) + "] }\n",
     ["arm 'huge'", "1,000,000 points", "10,000"]),
])
def test_a_grid_of_a_million_points_is_refused_at_once(tmp_path, extra, needles):
    r = sweeplab("run", str(_study(tmp_path, extra)), "--dry-run", timeout=60)
    _one_line_error(r, *needles)


def test_seed_counts_nesting_names_and_file_size_have_named_limits(tmp_path):
    big_seeds = STUDY.format(extra="").replace("seeds = 1", "seeds = 1000000000")
    with pytest.raises(ConfigError, match=r"study.seeds: 1,000,000,000 seeds; the limit is 1,000"):
        load_study(big_seeds)
    with pytest.raises(ConfigError, match=r"--seeds: 100,000,000 seeds"):
        load_study(STUDY.format(extra=""), seeds=100_000_000)
    deep = STUDY.format(extra="").replace("hidden = [16]", "hidden = " + "[" * 2000 + "]" * 2000)
    with pytest.raises(ConfigError, match="nested"):
        load_study(deep)
    long_name = STUDY.format(extra="").replace('name = "hard"', f'name = "{"n" * 300}"')
    with pytest.raises(ConfigError, match=r"study.name: is 300 characters long; the limit is 200"):
        load_study(long_name)
    huge = tmp_path / "huge.toml"
    huge.write_text(STUDY.format(extra="").replace('name = "hard"', f'name = "hard"\ndescription = "{"x" * 50_000_000}"'))
    r = sweeplab("run", str(huge), "--dry-run", timeout=120)
    _one_line_error(r, "huge.toml", "bytes", "1,000,000")
    r = sweeplab("run", str(_study(tmp_path)), "--dry-run", "--seeds", "100000000")
    _one_line_error(r, "--seeds", "1,000")
    r = sweeplab("run", str(_study(tmp_path)), "--dry-run", "--epochs", str(2**70))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_a_directory_given_as_study_file_is_named_a_directory(tmp_path):
    _one_line_error(sweeplab("run", str(tmp_path), "--dry-run"), str(tmp_path), "is a directory")


# -- sweeplab train: defaults that train, short output, errors first ---------------------------------------
def test_train_defaults_reach_90_percent_on_digits_and_an_explicit_sgd_stays_plain(tmp_path):
    r = sweeplab("train", "--dataset", "digits", "--model", "mlp", "--epochs", "5", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("data: digits")[0]
    assert "optim.momentum" in table and "data.path" not in table  # only what differs from the defaults
    assert len(table.strip().splitlines()) < 20
    with sqlite3.connect(tmp_path / "sweeplab.db") as conn:
        (cfg_json,) = conn.execute("select config_json from runs").fetchone()
        (acc,) = conn.execute("select test_acc from epochs where epoch = 5").fetchone()
    assert json.loads(cfg_json)["optim"] == {**json.loads(cfg_json)["optim"], "name": "sgd", "momentum": 0.9}
    assert acc >= 0.90

    cfg = tmp_path / "run.toml"
    cfg.write_text('epochs = 1\ndata = { dataset = "digits" }\noptim = { name = "sgd" }\n')
    r = sweeplab("train", "--config", str(cfg), "--out", str(tmp_path / "plain"), "--verbose")
    assert r.returncode == 0, r.stderr
    assert "data.path" in r.stdout  # --verbose: the full config
    with sqlite3.connect(tmp_path / "plain" / "sweeplab.db") as conn:
        (cfg_json,) = conn.execute("select config_json from runs").fetchone()
    assert json.loads(cfg_json)["optim"]["momentum"] == 0.0 and json.loads(cfg_json)["optim"]["lr"] == 0.01


def test_train_start_up_error_is_not_preceded_by_the_config(tmp_path):
    r = sweeplab("train", "--dataset", "npz", "--set", f"data.path={tmp_path}/missing.npz", "--epochs", "1",
                 "--out", str(tmp_path))
    assert "model.name" not in r.stdout and "Traceback" not in r.stdout + r.stderr
    assert "missing.npz" in r.stdout + r.stderr


def test_a_train_subset_larger_than_the_dataset_is_clamped_and_said(tmp_path):
    r = sweeplab("train", "--dataset", "moons", "--epochs", "1", "--set", "data.train_subset=5000",
                 "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "note: data.train_subset=5000: moons has 800 train examples, all are used" in r.stdout
