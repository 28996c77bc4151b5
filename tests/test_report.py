"""Reports from a real, finished digits study with planted outcomes.

One study is trained once for the module (about half a minute on 2 cores): a normal baseline, a
linear arm, an lr grid whose lr=1000 point ends at chance level, an "exploding lr" arm (MSE loss,
lr x10 per epoch) that diverges in epoch 4 of every seed, an "overfit" arm (linear least squares
on 80 training images, where a model with 65 weights per class can fit the training set exactly:
test accuracy peaks around epoch 7 and falls ~8 points) and a batch-size grid. Every number the
report states is checked against the epoch rows read back from the store, and the statistics
against scipy on the same numbers.
"""

from __future__ import annotations

import base64
import json
import re
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from sweeplab.errors import ConfigError, StoreError
from sweeplab.report import (
    build_report,
    chance_test,
    save_report,
    summarize,
    welch,
    write_report,
)
from sweeplab.report.figures import BASELINE_COLOUR, styles
from sweeplab.store import Store
from sweeplab.study import load_study
from sweeplab.study.execute import run_study

STUDY = """
[study]
name = "planted"
description = "Report test study: planted divergence, chance level and overfitting."
seeds = 3
metric = "test_acc"

[study.reference]
source = "made-up numbers, to check that the report shows them"
"published test acc %" = { linear = 96.5, baseline = 97.0 }

[baseline]
epochs = 5
batch_size = 64
data = { dataset = "digits" }
model = { name = "mlp", hidden = [32] }
optim = { name = "sgd", lr = 0.05, momentum = 0.9 }

[[arm]]
name = "linear"
model = { name = "linear" }

[[arm]]
name = "lr"
optim = { lr = [0.01, 0.1, 1000.0] }

[[arm]]
name = "exploding lr"
loss = { name = "mse" }
schedule = { name = "exponential", gamma = 10.0 }

[[arm]]
name = "overfit"
data = { train_subset = 80 }
model = { name = "linear" }
loss = { name = "mse" }
optim = { lr = 0.05 }
batch_size = 5
epochs = 40

[[arm]]
name = "batch size"
batch_size = [16, 256]
"""

DIVERGES = "exploding lr"
CHANCE = "lr: optim.lr=1000.0"
OVERFITS = "overfit"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    db = root / "sweeplab.db"
    run_study(load_study(STUDY), db, workers=2, threads=1)
    # The same study with one seed: its runs are seed 0 of the above, already in the store, so
    # recording it trains nothing.
    one_seed = STUDY.replace("seeds = 3", "seeds = 1").replace('name = "planted"', 'name = "planted-1seed"')
    assert run_study(load_study(one_seed), db, workers=1) == {}
    with Store(db, readonly=True) as store:
        report = build_report(store, "planted")
    out = root / "reports" / "planted"
    written = save_report(report, out)
    return SimpleNamespace(db=db, root=root, report=report, out=out, written=written)


@pytest.fixture(scope="module")
def raw(study):
    """The study read straight from the store: label -> list of (link, run record, epoch rows)."""
    with Store(study.db, readonly=True) as store:
        records = {r.id: r for r in store.list_runs(study="planted")}
        out: dict[str, list] = {}
        for link in store.study_runs("planted"):
            out.setdefault(link.label, []).append((link, records[link.run_id], store.epochs(link.run_id)))
    return out


def _finals(raw_runs, key):
    return [rows[-1][key] for _, rec, rows in raw_runs if rec.status == "completed"]


# ------------------------------------------------------------------------------ the study itself


def test_planted_outcomes_happened(raw):
    """Guards the fixture: if training changes, the planted arms must still do what they are for."""
    assert {link.status for link, _, _ in raw[DIVERGES]} == {"diverged"}
    for _, rec, rows in raw[DIVERGES]:
        assert json.loads(rec.status_detail)["epoch"] == 4
        assert [r["epoch"] for r in rows] == [1, 2, 3]  # no row for the epoch it diverged in
    others = [lbl for lbl in raw if lbl != DIVERGES]
    assert all(rec.status == "completed" for lbl in others for _, rec, _ in raw[lbl])
    assert max(_finals(raw[CHANCE], "test_acc")) < 0.13


# --------------------------------------------------------------------------- table == epoch rows


def test_table_numbers_equal_numbers_from_epoch_rows(study, raw):
    report = study.report
    assert {s.label for s in report.settings} == set(raw)
    for s in report.settings:
        runs = raw[s.label]
        done = [(rec, rows) for _, rec, rows in runs if rec.status == "completed"]
        trained = [(rec, rows) for _, rec, rows in runs if rows]
        assert s.outcomes == {st: sum(1 for _, r, _ in runs if r.status == st) for st in {r.status for _, r, _ in runs}}
        assert s.params == runs[0][1].params and s.flops == runs[0][1].flops
        test = [rows[-1]["test_acc"] for _, rows in done]
        assert list(s.final_test_acc.values) == pytest.approx(test)
        assert s.final_test_acc.n == len(test)
        if test:
            assert s.final_test_acc.mean == pytest.approx(np.mean(test))
        train = [rows[-1]["train_acc"] for _, rows in done]
        assert list(s.final_train_acc.values) == pytest.approx(train)
        assert list(s.gap.values) == pytest.approx([a - b for a, b in zip(train, test)])
        bests = [max(r["test_acc"] for r in rows) for _, rows in done]
        assert list(s.best_test_acc.values) == pytest.approx(bests)
        best_epochs = [next(r["epoch"] for r in rows if r["test_acc"] == b) for (_, rows), b in zip(done, bests)]
        assert s.best_epoch == (statistics.median(best_epochs) if best_epochs else None)
        to95 = [next(r["epoch"] for r in rows if r["test_acc"] >= 0.95 * b) for (_, rows), b in zip(done, bests)]
        assert list(s.epochs_to_95.values) == to95
        assert list(s.epoch_time_s.values) == pytest.approx(
            [statistics.median(r["epoch_time_s"] for r in rows) for _, rows in trained])
        assert list(s.images_per_s.values) == pytest.approx(
            [statistics.median(r["train_images_per_s"] for r in rows) for _, rows in trained])
        assert list(s.peak_mem_mb.values) == pytest.approx([max(r["peak_mem_mb"] for r in rows) for _, rows in trained])
        if done:
            per_class = np.mean([rows[-1]["test_per_class_acc"] for _, rows in done], axis=0)
            assert s.per_class_acc == pytest.approx(per_class.tolist())
            confusion = np.sum([rows[-1]["test_confusion"] for _, rows in done], axis=0)
            assert s.confusion == confusion.tolist()
    # Diverged runs have no final accuracy: the exploding arm has runs but n = 0.
    d = report.setting(DIVERGES)
    assert d.final_test_acc.n == 0 and d.outcomes == {"diverged": 3} and d.rank is None
    assert d.epoch_time_s.n == 3  # its three epochs per run were real and are timed


def test_table_is_sorted_by_the_study_metric_and_marks_the_best(study):
    ranked = [s for s in study.report.settings if s.rank is not None]
    means = [s.final_test_acc.mean for s in ranked]
    assert means == sorted(means, reverse=True)
    assert [s.rank for s in ranked] == list(range(1, len(ranked) + 1))
    assert study.report.settings[-1].label == DIVERGES  # nothing to rank it by: last
    best = study.report.best
    assert best is ranked[0] and best.is_best
    html = (study.out / "report.html").read_text()
    assert re.search(r'<tr class="best"><td>★ 1</td><td>' + re.escape(best.label), html)


def test_statistics_match_scipy(study):
    report = study.report
    base = report.setting("baseline")
    checked = 0
    for s in report.settings:
        f = s.final_test_acc
        if f.n < 2:
            continue
        x = np.array(f.values)
        assert f.mean == pytest.approx(x.mean())
        assert f.std == pytest.approx(x.std(ddof=1))
        lo, hi = sps.t.interval(0.95, f.n - 1, loc=x.mean(), scale=sps.sem(x))
        assert (f.ci_low, f.ci_high) == (pytest.approx(lo), pytest.approx(hi))
        if not s.is_baseline:
            expected = sps.ttest_ind(x, np.array(base.final_test_acc.values), equal_var=False)
            assert s.vs_baseline.p == pytest.approx(expected.pvalue)
            assert s.vs_baseline.diff == pytest.approx(x.mean() - np.mean(base.final_test_acc.values))
            checked += 1
    assert checked >= 5


def test_summaries_and_tests_say_when_they_cannot_be_computed():
    one = summarize([0.9])
    assert (one.n, one.mean, one.std, one.ci_low) == (1, 0.9, None, None)
    assert summarize([None, float("nan")]).n == 0
    c = welch(one, summarize([0.8, 0.82]))
    assert c.p is None and c.note == "n=1, no test" and c.diff == pytest.approx(0.09)
    assert welch(summarize([0.5, 0.5]), summarize([0.6, 0.6])).p is None


def test_table_ci_is_cut_to_the_possible_range_but_the_statistics_are_not():
    from sweeplab.report.render import acc_ci

    s = summarize([0.2, 1.0, 1.0])  # three seeds far apart: the t-interval passes both ends
    assert s.ci_low < 0 and s.ci_high > 1
    assert acc_ci(s) == "[0.00, 100.00]"
    inside = summarize([0.90, 0.92, 0.94])
    assert acc_ci(inside) == f"[{100 * inside.ci_low:.2f}, {100 * inside.ci_high:.2f}]"


@pytest.mark.parametrize("correct", [36, 44, 45, 46, 60])
def test_chance_threshold_is_the_binomial_test(correct):
    counts = [36] * 10  # 360 test examples, balanced: chance 10%
    t = chance_test(correct / 360, counts, 10)
    p = sps.binomtest(correct, 360, 0.1, alternative="greater").pvalue
    assert t.at_chance == (p >= 0.05)
    assert t.at_chance == (correct / 360 < t.threshold)
    assert t.chance == pytest.approx(0.1) and t.n_test == 360


# ------------------------------------------------------------------------------------- findings


def _subjects(report, kind):
    return {label for f in report.findings_of(kind) for label in f.subjects}


def test_planted_findings_appear_for_the_planted_arms_only(study):
    report = study.report
    assert _subjects(report, "divergence") == {DIVERGES}
    text = report.findings_of("divergence")[0].text
    assert "3 of 3 seeds" in text and "at epoch 4" in text

    assert _subjects(report, "chance") == {CHANCE}
    text = report.findings_of("chance")[0].text
    assert "3 of 3" in text and "chance is" in text and "360 test examples" in text

    assert _subjects(report, "overfitting") == {OVERFITS}
    text = report.findings_of("overfitting")[0].text
    peak = re.search(r"peaked at epoch (\d+) \(([\d.]+)%\) and fell by ([\d.]+) points", text)
    assert peak, text
    # The cited numbers are those of the mean test-accuracy curve of the completed seeds.
    s = report.setting(OVERFITS)
    curves = np.array([[r["test_acc"] for r in run.epochs] for run in s.completed_runs])
    mean = curves.mean(axis=0)
    e = int(np.argmax(mean))
    assert int(peak.group(1)) == e + 1
    assert float(peak.group(2)) == pytest.approx(100 * mean[e], abs=0.05)
    assert float(peak.group(3)) == pytest.approx(100 * (mean[e] - mean[-1]), abs=0.05)


def test_best_and_baseline_findings_cite_welch_p(study):
    report = study.report
    best = report.findings_of("best")[0].text
    assert report.best.label in best and ("Welch p" in best)
    base = report.findings_of("baseline")[0].text
    assert "Significantly worse" in base and CHANCE in base
    for s in report.settings:
        c = s.vs_baseline
        if c is None or c.p is None:
            continue
        p = f"p={c.p:.2f}" if c.p >= 0.01 else (f"p={c.p:.3f}" if c.p >= 0.001 else "p<0.001")
        assert f"{s.label} (" in base and p in base


def test_sweep_finding_is_the_spearman_test_on_the_stored_runs(study, raw):
    (f,) = study.report.findings_of("sweep")  # "batch size" has two values only: no trend claimed
    assert set(f.subjects) == {"lr: optim.lr=0.01", "lr: optim.lr=0.1", CHANCE}
    xs, ys = [], []
    for lr in (0.01, 0.1, 1000.0):
        finals = _finals(raw[f"lr: optim.lr={lr}"], "test_acc")
        xs += [lr] * len(finals)
        ys += finals
    rho, p = sps.spearmanr(xs, ys)
    assert f"Spearman ρ={rho:.2f} over {len(ys)} runs" in f.text
    assert ("falls as optim.lr grows" in f.text) == (p < 0.05 and rho < 0)
    assert ("No monotonic trend" in f.text) == (p >= 0.05)
    assert f.text.startswith("lr: final test accuracy against optim.lr goes from ")
    assert "at 1000.0," in f.text


def test_batch_size_finding_compares_time_per_epoch(study):
    (f,) = study.report.findings_of("batch_size")
    assert set(f.subjects) == {"baseline", "batch size: batch_size=16", "batch size: batch_size=256"}
    assert "batch 16:" in f.text and "s/epoch" in f.text and "batch 256:" in f.text
    assert "cannot be attributed to batch size" in f.text  # CPU peak RSS is not per-run memory


def test_one_seed_study_reports_that_no_test_was_possible(study, tmp_path):
    with Store(study.db, readonly=True) as store:
        report = build_report(store, "planted-1seed", with_figures=False)
    compared = [s for s in report.settings if s.vs_baseline is not None and s.vs_baseline.diff is not None]
    assert compared and all(s.final_test_acc.n == 1 and s.final_test_acc.std is None for s in compared)
    assert all(s.vs_baseline.p is None and s.vs_baseline.note == "n=1, no test" for s in compared)
    assert "No test possible" in report.findings_of("baseline")[0].text
    assert "not possible (n=1, no test)" in report.findings_of("best")[0].text
    # No finding quotes a p-value or calls anything significant.
    text = " ".join(f.text for f in report.findings)
    assert "Welch p" not in text and not re.search(r"(?<!not )significant(ly)? ", text)
    written = write_report(study.db, "planted-1seed", tmp_path / "one")
    assert "n=1, no test" in written["html"].read_text()


# ------------------------------------------------------------------------------------ rendering


def test_html_is_one_self_contained_file_with_every_figure(study):
    html = (study.out / "report.html").read_text()
    for forbidden in ("http://", "https://", "<link", "@import", "<script", "url(", "<iframe"):
        assert forbidden not in html.lower(), forbidden
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert len(sources) == html.count("<img") == len(study.report.figures)
    for src in sources:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    names = {f.name for f in study.report.figures}
    assert {"curve_train_loss", "curve_train_acc", "curve_test_acc", "sweep_lr", "sweep_batch-size",
            "per_class", "confusion_best", "arm_overfit"} <= names
    assert "sweep_linear" not in names  # no grid, no sweep
    for s in study.report.settings:
        assert f"<td>{s.label}</td>" in html
    assert "published test acc %" in html and "made-up numbers" in html


def test_markdown_links_figures_that_exist(study):
    md_path = study.written["md"]
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md_path.read_text())
    assert len(links) == len(study.report.figures)
    for link in links:
        assert not link.startswith(("/", "http")) and (md_path.parent / link).is_file()
    pngs = sorted(p.name for p in (study.out / "figures").glob("*.png"))
    assert pngs == sorted(Path(link).name for link in links)


def test_figures_follow_the_scale_and_colour_rules(study):
    by_name = {f.name: f for f in study.report.figures}
    assert "log scale because a run diverged" in by_name["curve_train_loss"].title
    assert "diverged" in by_name["curve_train_loss"].caption
    assert "log" not in by_name["curve_test_acc"].title
    assert "logarithmic" in by_name["sweep_lr"].caption  # 0.01 .. 1000
    palette = styles(study.report.settings)
    assert palette["baseline"].colour == BASELINE_COLOUR
    # Colours follow study order, not results: reversing the table order changes nothing.
    assert styles(list(reversed(study.report.settings))) == palette
    assert len({(p.colour, p.line) for p in palette.values()}) == len(palette)


def test_reference_numbers_sit_beside_the_measured_ones(study):
    report = study.report
    assert report.reference_columns == ["published test acc %"]
    assert report.setting("linear").reference == {"published test acc %": 96.5}
    assert report.setting("baseline").reference == {"published test acc %": 97.0}
    assert report.setting(OVERFITS).reference == {}


def test_appendix_lists_every_run_with_its_differences_from_the_baseline(study):
    md = study.written["md"].read_text()
    appendix = md.split("## Appendix")[1]
    for run in study.report.runs:
        assert run.run_id in appendix
    assert "model.name=linear" in appendix and "schedule.name=exponential" in appendix
    assert "diverged at epoch 4" in appendix


# ------------------------------------------------------------------------------- CLI and errors


def test_report_command(study, capsys):
    from sweeplab.cli import report_cmd
    from sweeplab.cli.main import main

    assert report_cmd.report  # importing the module registers `report` (main.py imports it too)

    target = study.root / "cli-report"
    assert main(["report", "planted", "--out", str(study.root), "--dir", str(target), "--format", "html"]) == 0
    assert (target / "report.html").is_file() and not (target / "report.md").exists()
    capsys.readouterr()
    assert main(["report", "nope", "--out", str(study.root)]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert main(["report", "planted", "--out", str(study.root), "--format", "pdf"]) == 2


def test_write_report_rejects_bad_input(study, tmp_path):
    with pytest.raises(StoreError):
        write_report(tmp_path / "missing.db", "planted", tmp_path / "r")
    with pytest.raises(StoreError):
        write_report(study.db, "no-such-study", tmp_path / "r")
    with pytest.raises(ConfigError):
        write_report(study.db, "planted", tmp_path / "r", formats="html,pdf")
    assert not (tmp_path / "r").exists()


def test_report_of_a_study_with_no_finished_run(tmp_path):
    """A study recorded but not trained yet (``run --report`` before the first run ends)."""
    from sweeplab.study.execute import record_study

    db = tmp_path / "sweeplab.db"
    with Store(db) as store:
        record_study(load_study(STUDY), store)
    written = write_report(db, "planted", tmp_path / "r")
    html = written["html"].read_text()
    assert "No run has completed yet" in html and "still pending or running" in html
    assert html.count("<img") == 0
