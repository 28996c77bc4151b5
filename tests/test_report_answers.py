"""Reports that answer the assignment's questions (issue 11), on one real digits study run here.

Every check reads the numbers back from the store itself (or recomputes them with scipy) and
asserts that the report states them: arm descriptions, the study metric in Δ and Welch, the
explaining findings, the symmetric-log axis of a grid holding 0, overlays of chosen arms, time and
memory against batch size, and vector figures that parse.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats

from sweeplab.report import build_report, save_report
from sweeplab.store import Store
from sweeplab.study import load_study
from sweeplab.study.execute import run_study

from helpers import sweeplab

# One study of 14 settings x 2 seeds is trained for the module (about 45 s on 2 cores): slow set.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

STUDY = """
[study]
name = "answers"
description = "Digits: the classic ablations, tiny."
seeds = 2
metric = "val_acc"
reference = { source = "a made-up paper", test_acc_pct_epoch2 = { baseline = 50 }, test_error_pct = { "one linear" = 7.0 } }

[baseline]
epochs = 3
batch_size = 64
data = { dataset = "digits", val_fraction = 0.2 }
model = { name = "mlp", hidden = [24], activation = "relu" }
optim = { name = "sgd", lr = 0.1 }

[[arm]]
name = "one linear"
description = "A single Linear layer: <b>logistic regression</b>."
model = { name = "mlp", hidden = [] }

[[arm]]
name = "deep linear"
description = "The same MLP without activations: a deep linear network."
model = { name = "mlp", hidden = [24], activation = "none" }

[[arm]]
name = "lr"
optim = { lr = [0.003, 0.1, 0.3] }

[[arm]]
name = "wd"
optim = { weight_decay = [0, 1e-4, 1e-2] }

[[arm]]
name = "bs"
batch_size = [16, 512]

[[arm]]
name = "mse"
loss = { name = "mse" }

[[arm]]
name = "numpy"
model = { name = "numpy_mlp", hidden = [24], activation = "relu" }

[[figure]]
arms = ["one linear", "deep linear"]
title = "Linear maps, one or many"
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("answers")
    db = tmp / "sweeplab.db"
    run_study(load_study(STUDY), db, workers=1, threads=1)
    with Store(db, readonly=True) as store:
        report = build_report(store, "answers", arms="lr,wd")
    return tmp, db, report


def finding(report, kind: str, *words: str) -> str:
    texts = [f.text for f in report.findings_of(kind) if all(w in f.text for w in words)]
    assert texts, f"no {kind} finding with {words}: {[f.text for f in report.findings]}"
    return texts[0]


def test_descriptions_are_stored_and_shown_as_text(study):
    tmp, db, report = study
    with Store(db, readonly=True) as store:
        arms = {a.name: a.description for a in store.get_study("answers").arms}
    assert arms["deep linear"] == "The same MLP without activations: a deep linear network."
    out = save_report(report, tmp / "r1", formats="html,md")
    html, md = out["html"].read_text(), out["md"].read_text()
    for text in (arms["deep linear"], "The same MLP without activations"):
        assert text in md and text in html
    # shown as text, never as markup
    assert "&lt;b&gt;logistic regression&lt;/b&gt;" in html and "<b>logistic regression</b>" not in html
    assert "A single Linear layer" in md


def test_delta_and_welch_use_the_study_metric(study):
    _, _, report = study
    base = report.setting("baseline")
    s = report.setting("one linear")
    a, b = np.array(s.metric.values), np.array(base.metric.values)
    assert s.metric.values == tuple(r.final["val_acc"] for r in s.completed_runs)
    assert s.vs_baseline.diff == pytest.approx(a.mean() - b.mean())
    expected = stats.ttest_ind(a, b, equal_var=False)
    if math.isfinite(expected.pvalue):
        assert s.vs_baseline.p == pytest.approx(expected.pvalue)
    # and the test set is reported beside it
    t = np.array([r.final["test_acc"] for r in s.completed_runs])
    tb = np.array([r.final["test_acc"] for r in base.completed_runs])
    assert s.vs_baseline_test.diff == pytest.approx(t.mean() - tb.mean())
    text = finding(report, "baseline")
    assert "final validation accuracy" in text and "On the test set" in text


def test_linear_composition_finding(study):
    _, _, report = study
    deep, one = report.setting("deep linear"), report.setting("one linear")
    text = finding(report, "linear", "deep linear", "one linear")
    diff = 100 * (np.mean(deep.metric.values) - np.mean(one.metric.values))
    assert f"{diff:+.{2 if abs(diff) < 1 else 1}f} points" in text
    p = stats.ttest_ind(deep.metric.values, one.metric.values, equal_var=False).pvalue
    assert ("it held" in text) == (p >= 0.05) and "composition of linear maps" in text


def test_learning_rate_finding_names_the_best_and_the_edge(study):
    _, _, report = study
    members = [s for s in report.settings if s.arm == "lr"]
    best = max((s for s in members if s.metric.n), key=lambda s: np.mean(s.metric.values))
    text = finding(report, "lr", "best learning rate")
    assert f"best learning rate on the grid is {best.axes['optim.lr']:g}" in text
    on_edge = best.axes["optim.lr"] in (0.003, 0.3)
    assert ("optimum may lie beyond the grid" in text) == on_edge
    assert ("inside the grid" in text) == (not on_edge)
    # epochs to 95% of the best, recomputed from the stored curves
    target = 0.95 * np.mean(best.metric.values)
    slow = next(s for s in members if s.axes["optim.lr"] == 0.003)
    means = [np.mean([r.curve("val_acc")[e][1] for r in slow.completed_runs]) for e in range(3)]
    reached = next((e + 1 for e, m in enumerate(means) if m >= target), None)
    assert (f"lr=0.003: epoch {reached}" if reached else "lr=0.003: not within 3 epochs") in text


def test_batch_size_at_equal_steps(study):
    _, _, report = study
    text = finding(report, "batch_steps")
    runs = [r for r in report.runs if r.arm == "bs"]
    n_train = runs[0].env["n_train"]
    assert f"Batch 16 takes {math.ceil(n_train / 16):,} steps per epoch, batch 512 {math.ceil(n_train / 512):,}" in text
    assert "whole run" in text  # 3 epochs of batch 512 are fewer steps than one epoch of batch 16


def test_regulariser_gap_loss_speed_and_agreement(study):
    _, _, report = study
    wd = report.setting("wd: optim.weight_decay=0.01")
    base = report.setting("baseline")
    text = finding(report, "regularisation", "wd: optim.weight_decay=0.01")
    assert f"{100 * np.mean(wd.gap.values):.1f} points vs {100 * np.mean(base.gap.values):.1f} without" in text
    assert "test loss" in text
    loss = finding(report, "loss", "mse")
    assert f"{base.epochs_to_95.mean:.1f} vs {report.setting('mse').epochs_to_95.mean:.1f}" in loss
    agree = finding(report, "agreement", "numpy")
    numpy = report.setting("numpy")
    worst = max(abs(a - b) for ra in base.completed_runs for rb in numpy.completed_runs if ra.seed == rb.seed
                for (_, a), (_, b) in zip(ra.curve("train_loss"), rb.curve("train_loss")))
    assert f"{worst:.2g} in train loss" in agree
    # the duplicate setting (wd=0 is the baseline's runs) does not repeat the comparisons
    assert len(report.findings_of("agreement")) == 1


def test_zero_grid_gets_a_symlog_axis_and_overlays_draw_both_arms(study):
    _, _, report = study
    figures = {f.name: f for f in report.figures}
    ax = figures["sweep_wd"].mpl.axes[0]
    assert ax.get_xscale() == "symlog"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.0001", "0.01"]
    assert figures["sweep_lr"].mpl.axes[0].get_xscale() == "log"
    chosen = figures["overlay-one-linear-deep-linear"]
    assert chosen.title == "Linear maps, one or many"
    labels = [t.get_text() for t in chosen.mpl.axes[0].get_legend().get_texts()]
    assert labels[:2] == ["one linear", "deep linear"]
    both = figures["overlay-lr-wd"]  # --arms lr,wd: different axes, so curves of every setting
    legend = [t.get_text() for t in both.mpl.axes[0].get_legend().get_texts()]
    assert {s.label for s in report.settings if s.arm in ("lr", "wd")} <= set(legend)
    resources = next(f for f in report.figures if f.section == "resources")
    titles = [a.get_title() for a in resources.mpl.axes]
    assert titles[0] == "time per epoch (s)" and "CPU" in titles[2]
    xs = sorted(resources.mpl.axes[0].lines[0].get_xdata())
    assert xs == [16.0, 64.0, 512.0]


def test_vector_figures_parse_and_png_is_200_dpi(study, tmp_path):
    from PIL import Image

    _, _, report = study
    out = save_report(report, tmp_path, formats="html", figure_formats="png,svg,pdf")
    svg = out["figure:sweep_wd.svg"]
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and "0.0001" in svg.read_text()
    pdf = out["figure:sweep_wd.pdf"].read_bytes()
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:]
    png = Image.open(out["figure:sweep_wd"])
    assert round(png.info["dpi"][0]) == 200 and png.size[0] == int(7.5 * 200)
    html = out["html"].read_text()
    assert re.search(r'<img alt="Sweep: wd over optim.weight_decay" width="750"', html)


def test_bad_arms_and_formats_are_one_line_errors(study):
    tmp, db, _ = study
    before = db.read_bytes()
    for args, expected in ((["--arms", "lr,nope"], "--arms: 'nope' is not an arm of this study"),
                           (["--arms", " , "], "--arms: names no arm; give one or more of"),
                           (["--figure-format", "png,gif"], "--figure-format: figure formats are png, svg, pdf")):
        r = sweeplab("report", "answers", "--out", str(tmp), *args)
        assert r.returncode == 2 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert db.read_bytes() == before
    bad = STUDY.replace('arms = ["one linear", "deep linear"]', 'arms = ["one linear", "dep linear"]')
    with pytest.raises(Exception, match=r"figure\[0\]\.arms.*'dep linear' is not an arm"):
        load_study(bad)


def test_measured_beside_published_numbers(study):
    _, _, report = study
    text = finding(report, "reference", "a made-up paper")
    base, one = report.setting("baseline"), report.setting("one linear")
    at2 = np.mean([dict(r.curve("test_acc"))[2] for r in base.completed_runs])
    assert f"baseline test accuracy (epoch 2) {100 * at2:.2f}% measured vs 50.00% published" in text
    err = 100 * (1 - np.mean(one.final_test_acc.values))
    assert f"one linear test error (final) {err:.2f}% measured vs 7% published" in text
    assert "JPEG" not in text  # digits is not a JPEG copy: no caveat
