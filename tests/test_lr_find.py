"""Issue 14, item 1: the LR range test (``sweeplab lr-find``, ``sl.lr_find``). Deterministic by
seed, stored in the study's store, plotted on a log axis, the 4x stop rule, a suggestion that
trains digits, nothing already stored touched, and bad input as one line with exit code 2.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import sweeplab as sl
from sweeplab.cli.main import main
from sweeplab.store import Store
from sweeplab.train.lr_find import suggest, valley_index

from helpers import sweeplab

pytestmark = pytest.mark.timeout(120)

STUDY = """[study]
name = "lr-digits"
seeds = [0, 1]
[baseline]
epochs = 2
device = "cpu"
data = { dataset = "digits" }
model = { name = "mlp", hidden = [16] }
optim = { name = "adam", lr = 0.001 }
[[arm]]
name = "sgd"
optim = { name = "sgd", lr = 0.01, momentum = 0.9 }
"""

RUN = {"data": {"dataset": "digits"}, "model": {"name": "mlp", "hidden": [16]}, "device": "cpu",
       "optim": {"name": "adam", "lr": 0.001}}


@pytest.fixture(scope="module")
def study_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("study") / "lr.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def baseline_test(study_file, tmp_path_factory):
    """One stored test of the study's baseline (defaults: 1e-7 to 10, 100 steps, valley)."""
    out = tmp_path_factory.mktemp("out")
    return sl.lr_find(study=study_file, arm="baseline", out=out), out


def _rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_same_seed_same_curve_stored_and_read_back(baseline_test, study_file, tmp_path):
    first, out = baseline_test
    with Store(out / "sweeplab.db", readonly=True) as store:
        (stored,) = store.lr_finds("lr-digits")
    assert stored.key == first.key and stored.arm == "baseline" and stored.seed == 0 and stored.method == "valley"
    assert stored.curve["lrs"] == first.lrs and stored.curve["smoothed"] == first.smoothed
    assert stored.suggestion == first.suggestion == first.lrs[first.index]
    assert json.loads(stored.config_json)["optim"]["name"] == "adam"

    again = sl.lr_find(study=study_file, arm="baseline", out=tmp_path / "other")
    with Store(tmp_path / "other" / "sweeplab.db", readonly=True) as store:
        assert store.get_lr_find(again.key).curve_json == stored.curve_json  # to the last digit

    sl.lr_find(study=study_file, arm="baseline", out=out)  # the same test again replaces its row
    assert _rows(out / "sweeplab.db", "SELECT id, curve_json FROM lr_finds") == [(stored.id, stored.curve_json)]

    other_seed = sl.lr_find(study=study_file, arm="baseline", seed=1, out=out)
    assert other_seed.key != first.key and other_seed.losses != first.losses
    with Store(out / "sweeplab.db", readonly=True) as store:
        assert len(store.lr_finds("lr-digits", "baseline")) == 2
        assert store.get_lr_find(other_seed.key).curve_json != stored.curve_json


def test_the_suggested_lr_trains_digits_to_90_percent_in_5_epochs(baseline_test, tmp_path):
    result, _ = baseline_test
    assert result.detail.startswith("ran all 100 steps") and 1e-7 < result.suggestion < 10
    run = sl.train({**RUN, "optim": {"name": "adam", "lr": result.suggestion}, "epochs": 5}, out=tmp_path)
    assert run.status == "completed" and len(run.epochs) == 5
    assert run.epochs[-1]["test_acc"] >= 0.90, (result.suggestion, run.epochs[-1]["test_acc"])


def test_an_lr_find_changes_no_stored_run_and_no_later_run(study_file, tmp_path):
    out = tmp_path / "out"
    sl.run(study_file, out=out, workers=1, progress=False)
    db = out / "sweeplab.db"
    tables = ("runs", "epochs", "checkpoints", "study_runs", "studies")
    before = {t: _rows(db, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
    assert len(before["epochs"]) == 8  # 2 arms x 2 seeds x 2 epochs, all completed
    sl.lr_find(study=study_file, arm="sgd", out=out)
    assert {t: _rows(db, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables} == before
    assert _rows(db, "SELECT study, arm FROM lr_finds") == [("lr-digits", "sgd")]
    # the study's report shows the stored test, redrawn from its curve, on a log lr axis
    from sweeplab.report import build_report

    with Store(db, readonly=True) as store:
        report = build_report(store, "lr-digits")
    (fig,) = [f for f in report.figures if f.section == "lr_find"]
    (stored,) = report.lr_finds
    assert fig.title == "LR range test: sgd, seed 0" and f"{stored.suggestion:.3g}" in fig.caption
    ax = fig.mpl.axes[0]
    assert ax.get_xscale() == "log" and list(ax.lines[1].get_ydata()) == stored.curve["smoothed"]

    # A run trained right after a test in the same process trains exactly as one without it.
    cfg = {**RUN, "epochs": 2, "seed": 3}
    plain = sl.train(cfg, out=tmp_path / "a").epochs
    sl.lr_find(cfg, out=tmp_path / "b")
    after = sl.train(cfg, out=tmp_path / "b").epochs
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    assert [[e[k] for k in keys] for e in after] == [[e[k] for k in keys] for e in plain]


def test_the_4x_rule_stops_a_sweep_to_a_huge_lr():
    r = sl.lr_find(RUN, end=1e6, steps=100, save=False)
    assert len(r.lrs) < 100 and "4x its minimum" in r.detail
    running_min = np.minimum.accumulate(r.smoothed)
    assert r.smoothed[-1] > 4 * running_min[-1]  # the step that stopped it is past the threshold
    assert all(s <= 4 * m for s, m in zip(r.smoothed[1:-1], running_min[1:-1]))  # and none before it
    assert math.isclose(r.lrs[1] / r.lrs[0], 1e13 ** (1 / 99))  # exponential from 1e-7 to 1e6


def test_the_plot_is_a_png_and_an_svg_with_a_log_lr_axis(baseline_test):
    from sweeplab.report.lr_find import lr_find_figure

    result, out = baseline_test
    png, svg = result.files["png"], result.files["svg"]
    assert png.parent == out / "lr_find" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Store(out / "sweeplab.db", readonly=True) as store:
        stored = store.get_lr_find(result.key)
    fig = lr_find_figure(stored.curve, stored.suggestion, stored.method, "t")  # redrawn from the store
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    marked = [line for line in ax.get_lines() if "suggestion (valley)" in (line.get_label() or "")]
    assert marked and marked[0].get_xdata()[0] == stored.suggestion
    # The file itself has a log x axis: between two major ticks (decades) the minor ticks sit at
    # log10(2), ..., log10(9) of the way.
    major, minor = _x_ticks(svg)
    assert len(major) >= 3 and np.allclose(np.diff(major), np.diff(major)[0], rtol=1e-3)
    inside = sorted(m for m in minor if major[0] < m < major[1])
    assert np.allclose([(m - major[0]) / (major[1] - major[0]) for m in inside], np.log10(range(2, 10)), atol=2e-3)


def _x_ticks(svg: Path) -> tuple[list[float], list[float]]:
    """x positions of the SVG's major and minor x-axis ticks (matplotlib's ``xtick_N`` groups)."""
    ns = "{http://www.w3.org/2000/svg}"
    major, minor = [], []
    for group in ET.parse(svg).getroot().iter(f"{ns}g"):
        if not group.get("id", "").startswith("xtick_"):
            continue
        for use in group.iter(f"{ns}use"):
            if use.get("x") is None:  # the glyphs of a label
                continue
            (major if "stroke-width: 0.8" in use.get("style", "") else minor).append(float(use.get("x")))
    return sorted(major), sorted(minor)

def test_suggestion_methods_read_the_curve_as_fastai_does():
    lrs = list(np.logspace(-7, 1, 100))
    x = np.log10(lrs)
    curve = list(2.3 - np.tanh(x + 2) + np.where(x > -0.5, (x + 0.5) ** 2 * 4, 0))  # falls, then turns up
    i_steep, lr_steep = suggest(lrs, curve, "steepest", 100)
    assert abs(x[i_steep] + 2) < 0.1 and lr_steep == lrs[i_steep]  # where tanh falls fastest
    i_min, lr_min = suggest(lrs, curve, "minimum", 100)
    assert i_min == int(np.argmin(curve[10:95])) + 10 and lr_min == lrs[i_min] / 10
    i_valley, lr_valley = suggest(lrs, curve, "valley", 100)
    assert 10 < i_valley < i_min and lr_valley == lrs[i_valley]  # inside the descent, before its bottom
    # a plateau, a fall from index 5 to index 13, a rise: the point is in the fall's first half
    y = np.array([9.0] * 5 + list(range(8, -1, -1)) + [1, 2, 3])
    assert 5 <= valley_index(y) <= 9


BAD = [
    (["STUDY", "--arm", "nope"], "--arm", "baseline, sgd"),
    (["STUDY", "--start", "10", "--end", "1"], "--start", "below the end"),
    (["STUDY", "--steps", "5"], "--steps", "from 10"),
    (["STUDY", "--method", "middle"], "--method", "valley, steepest, minimum"),
    (["STUDY", "--end", "-1"], "--end", "positive"),
    (["STUDY", "--start", "1e-300", "--end", "1e300"], "--start", "more than a float can hold"),
    (["STUDY", "--seed", "-1"], "--seed", "[0, 2**32 - 1]"),
    ([], "STUDY/--config", "one of the two"),
]


@pytest.mark.parametrize("args,option,words", BAD, ids=[b[1] + "-" + b[2][:8] for b in BAD])
def test_bad_input_is_one_line_naming_the_option(capsys, study_file, tmp_path, args, option, words):
    args = [str(study_file) if a == "STUDY" else a for a in args]
    code = main(["lr-find", *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {option}:") and words in lines[0] and "Traceback" not in err
    assert not (tmp_path / "sweeplab.db").exists() and not (tmp_path / "lr_find").exists()


def test_an_out_that_cannot_take_the_result_fails_before_the_test_trains(capsys, study_file, tmp_path):
    """--out a file: one line naming --out (was a NotADirectoryError traceback after training); a
    foreign file as the store: refused before training, nothing written beside it (the plots were)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["lr-find", str(study_file), "--out", str(afile)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out:") and "lr_find" in err and len(err.strip().splitlines()) == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "sweeplab.db").write_bytes(b"not a run store" * 10)
    assert main(["lr-find", str(study_file), "--out", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "not a SQLite database" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in foreign.iterdir()) == ["sweeplab.db"]
    assert (foreign / "sweeplab.db").read_bytes() == b"not a run store" * 10


def test_a_range_that_diverges_at_once_suggests_nothing():
    """From lr 100 the loss rises at the first step: the 4x rule stops the sweep at its second
    point, and there is no valley to read (it used to suggest the start, 100, which diverges)."""
    r = sl.lr_find(RUN, start=100, end=1e6, steps=10, save=False)
    assert len(r.lrs) == 2 and r.smoothed[1] > 4 * r.smoothed[0]
    assert r.suggestion is None and r.index is None and "lower the start" in r.detail
    assert suggest([1.0, 2.0, 3.0], [2.0, 2.5, 9.0], "minimum", 10) == (None, None)


def _foreign(db: Path) -> str:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    return "tables of its own"


def _newer(db: Path) -> str:
    from sweeplab.store import _schema

    Store(db).close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {_schema.current_version() + 1}")
    con.commit()
    con.close()
    return "newer sweeplab"


@pytest.mark.parametrize("make", [_foreign, _newer], ids=["foreign", "newer-schema"])
def test_a_store_that_cannot_take_the_test_refuses_it_before_the_sweep(capsys, study_file, tmp_path, make):
    db = tmp_path / "sweeplab.db"
    words = make(db)
    before = db.read_bytes()
    code = main(["lr-find", str(study_file), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and words in lines[0] and str(db) in lines[0], err
    assert db.read_bytes() == before
    assert not (tmp_path / "lr_find").exists()  # refused before the sweep: no plot of a test not stored


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cli_lr_find_then_train_with_its_suggestion(study_file, tmp_path):
    """The commands a user types: lr-find on a run config, then train with the printed lr."""
    config = tmp_path / "run.toml"
    config.write_text('device = "cpu"\ndata = { dataset = "digits" }\nmodel = { name = "mlp", hidden = [16] }\n'
                      'optim = { name = "adam", lr = 0.001 }\n')
    found = sweeplab("lr-find", "--config", str(config), "--out", str(tmp_path))
    assert found.returncode == 0, found.stderr
    lr = float(re.search(r"suggested lr: ([0-9.e+-]+) \(method: valley\)", found.stdout).group(1))
    plot = Path(re.search(r"plot: (\S+\.png)", found.stdout).group(1))
    assert plot.is_file() and plot.with_suffix(".svg").is_file()
    assert _rows(tmp_path / "sweeplab.db", "SELECT count(*), max(method) FROM lr_finds") == [(1, "valley")]
    trained = sweeplab("train", "--config", str(config), "--lr", repr(lr), "--epochs", "5", "--out", str(tmp_path))
    assert trained.returncode == 0, trained.stderr
    acc = _rows(tmp_path / "sweeplab.db", "SELECT test_acc FROM epochs WHERE epoch = 5")
    assert acc and acc[0][0] >= 0.90, (lr, acc)

    steep = sweeplab("lr-find", str(study_file), "--arm", "sgd", "--method", "steepest", "--seed", "1",
                     "--out", str(tmp_path))
    assert steep.returncode == 0 and "study lr-digits, arm sgd, seed 1" in steep.stdout, steep.stderr
    assert _rows(tmp_path / "sweeplab.db", "SELECT count(*) FROM lr_finds WHERE method = 'steepest'") == [(1,)]
