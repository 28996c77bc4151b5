"""Tests for the studies shipped in ``src/sweeplab/studies``: each one validates, every run it
defines can build its model, and each runs end to end in smoke mode (``sweeplab run NAME --smoke``)
into a fresh store with a finished run in every arm, and gets a report.

The smoke runs of the CIFAR-10 studies need the shared image-folder copy of CIFAR-10 (marked
``cifar``, skipped without it) and, with the whole data set decoded and the larger networks, are
marked ``slow``; the two that need no download stay in the default (fast) suite.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import sweeplab

from sweeplab.cli import studies_cmd  # noqa: F401  (registers `studies` and `show` on the app)
from sweeplab.cli.main import main
from sweeplab.config import RunConfig
from sweeplab.data import load_dataset
from sweeplab.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
from sweeplab.store import Store
from sweeplab.study import load_study
from sweeplab.study.bundled import bundled_path, list_bundled
from sweeplab.study.smoke import smoke_overrides
from sweeplab.train.setup import make_model
from sweeplab.train.optim import build_optimizer

STUDIES = [
    "quickstart",
    "cifar10-tutorial-ablations",
    "cifar10-simple-cnn-pipeline",
    "cifar10-resnet-paper",
    "cifar10-lazy-boring-cool",
    "toy-mlp-numpy-vs-torch",
    "cifar10-vgg-optimizers",
    "palindrome-rnn",
    "cifar10-blocknet",
]
#: Studies that need no download: their smoke runs are part of the fast suite.
LOCAL = ("quickstart", "palindrome-rnn")


def uses_cifar10(name: str) -> bool:
    return any(run.config.data.dataset == "cifar10" for run in load_study(bundled_path(name)).runs)


# -- every file validates ------------------------------------------------------------------------
def test_the_nine_studies_are_bundled() -> None:
    assert sorted(list_bundled()) == sorted(STUDIES)
    assert [name for name in STUDIES if not uses_cifar10(name)] == list(LOCAL)


@pytest.mark.parametrize("name", STUDIES)
def test_study_validates_and_says_what_it_reproduces(name: str) -> None:
    path = bundled_path(name)
    spec = load_study(path)
    text = path.read_text(encoding="utf-8")
    assert spec.name == name  # the file name is the name `sweeplab run NAME` and the store use
    assert spec.description and list_bundled()[name] == " ".join(spec.description.split())
    assert text.startswith(f"# {name}: "), "the header comment says what the study reproduces"
    assert all(arm.description for arm in spec.arms if arm.name != "baseline")
    assert len(spec.seeds) == 3 and spec.unique_runs()
    # The smoke variant (what the tests below and `--smoke` run) validates too.
    smoke = load_study(path, overrides=smoke_overrides(path), seeds=1, epochs=1)
    assert {r.config.epochs for r in smoke.runs} == {1}
    assert {r.arm for r in smoke.runs} == {r.arm for r in spec.runs}


@cache
def _dataset_like(data_json: str):
    """Dataset metadata for building models: CIFAR-10's is known; the others are generated."""
    cfg = RunConfig.model_validate({"data": json.loads(data_json)})
    if cfg.data.dataset == "cifar10":
        return SimpleNamespace(kind="image", input_shape=(3, 32, 32), num_classes=10, vocab_size=None)
    return load_dataset(cfg.data)


@pytest.mark.parametrize("name", STUDIES)
def test_every_run_builds_its_model_and_optimizer(name: str) -> None:
    # Model option *values* (and numpy_mlp's SGD-only optimizer) are checked when the run starts;
    # a shipped study must not fail there, hours into a GPU job.
    seen: set[str] = set()
    for run in load_study(bundled_path(name)).unique_runs():
        cfg = run.config
        key = json.dumps([cfg.model.model_dump(mode="json"), cfg.data.model_dump(mode="json"),
                          cfg.optim.model_dump(mode="json")], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        model = make_model(cfg, _dataset_like(json.dumps(cfg.data.model_dump(mode="json"), sort_keys=True)))
        if hasattr(model, "build_optimizer"):  # numpy_mlp brings its own SGD, CPU only
            assert cfg.device == "cpu", f"{run.label}: {cfg.model.name} runs on the CPU only"
            optimizer = model.build_optimizer(cfg.optim)
        else:
            optimizer = build_optimizer(model.parameters(), cfg.optim)
        assert isinstance(optimizer, torch.optim.Optimizer), run.label
        assert optimizer.param_groups[0]["lr"] == cfg.optim.lr, run.label
        assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters())), run.label


def test_resnet_paper_cites_the_paper_beside_matching_arms() -> None:
    spec = load_study(bundled_path("cifar10-resnet-paper"))
    ref = spec.reference
    assert "He et al. 2016" in ref["source"]
    # {column: {arm: value}}: the report puts a "test_error_pct" column beside the measured numbers.
    assert ref["test_error_pct"] == {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97}
    assert {a.name for a in spec.arms} == set(ref["test_error_pct"])
    for run in spec.runs:
        cfg = run.config
        assert cfg.model.name == run.arm
        assert (cfg.data.val_size, cfg.batch_size, cfg.optim.lr, cfg.optim.weight_decay) == (5000, 128, 0.1, 1e-4)
        assert cfg.schedule.interval == "step" and cfg.schedule.milestones == [32000, 48000]
        steps_per_epoch = -(-45000 // cfg.batch_size)
        assert cfg.epochs * steps_per_epoch >= 64000 > (cfg.epochs - 1) * steps_per_epoch


def test_palindrome_study_sweeps_length_for_rnn_and_lstm() -> None:
    spec = load_study(bundled_path("palindrome-rnn"))
    lengths: dict[str, set[int]] = defaultdict(set)
    for run in spec.runs:
        cfg = run.config
        assert cfg.model.name == run.arm and cfg.grad_clip == 10 and cfg.model.options()["hidden"] == 128
        lengths[run.arm].add(run.axes["data.seq_length"])
    assert dict(lengths) == {"rnn": {5, 10, 15, 20, 25, 30}, "lstm": {5, 10, 15, 20, 25, 30}}


def test_toy_study_puts_numpy_and_torch_side_by_side() -> None:
    spec = load_study(bundled_path("toy-mlp-numpy-vs-torch"))
    by_arm = defaultdict(set)
    options = defaultdict(list)  # (dataset, seed) -> model options of each implementation
    for run in spec.runs:
        cfg = run.config
        by_arm[run.arm].add((cfg.model.name, cfg.data.dataset))
        without_name = cfg.model.model_dump(exclude={"name"})
        options[cfg.data.dataset, run.seed].append((without_name, cfg.model_dump(exclude={"model"})))
    assert by_arm["pytorch mlp"] == {("mlp", d) for d in ("moons", "circles", "blobs")}
    assert by_arm["numpy mlp"] == {("numpy_mlp", d) for d in ("moons", "circles", "blobs")}
    assert by_arm["cifar10 mlp 64-64-64"] == {("mlp", "cifar10"), ("numpy_mlp", "cifar10")}
    # Side by side means the same network and run settings: only the implementation differs.
    for key, (torch_run, numpy_run) in options.items():
        assert torch_run == numpy_run, key
    assert options["moons", 0][0][0]["hidden"] == [20]


# -- the CLI ---------------------------------------------------------------------------------------
def test_studies_lists_every_bundled_study_on_one_line(capsys) -> None:
    assert main(["studies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in STUDIES:
        (line,) = [line for line in lines if line.startswith(name + " ")]
        assert f"{len(load_study(bundled_path(name)).unique_runs())} runs" in line
    assert "sweeplab show NAME" in lines[-1]


def test_show_prints_the_file_byte_for_byte(capsys) -> None:
    assert main(["show", "cifar10-resnet-paper"]) == 0
    assert capsys.readouterr().out == bundled_path("cifar10-resnet-paper").read_text(encoding="utf-8")
    assert main(["show", "no-such-study"]) == 2
    assert "quickstart" in capsys.readouterr().err


# -- smoke runs -------------------------------------------------------------------------------------
def _smoke_params():
    params = []
    for name in STUDIES:
        if name in LOCAL:
            params.append(pytest.param(name, id=name))
        else:
            params.append(pytest.param(name, id=name, marks=[pytest.mark.cifar, pytest.mark.slow,
                                                              pytest.mark.timeout(1200)]))
    return params


@pytest.mark.parametrize("name", _smoke_params())
def test_smoke_run_end_to_end(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = {"SWEEPLAB_OFFLINE": "1", "SWEEPLAB_DATA": str(tmp_path / "data")}
    if name not in LOCAL:
        # The shared CIFAR-10 copy (../shared/data/cifar10-jpeg.tar.gz or $SWEEPLAB_CIFAR10); skips without.
        env.update(request.getfixturevalue("cifar10_env"))
    out = tmp_path / "runs"
    t0 = time.perf_counter()
    proc = sweeplab("run", name, "--smoke", "--out", str(out), "--workers", "1", env=env, timeout=1200)
    print(f"smoke run of {name}: {time.perf_counter() - t0:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    spec = load_study(bundled_path(name), overrides=smoke_overrides(bundled_path(name)), seeds=1, epochs=1)
    with Store(out / "sweeplab.db", readonly=True) as store:
        links = store.study_runs(name)
        rows = {link.run_id: store.epochs(link.run_id) for link in links}
    assert {link.run_id for link in links} == {r.run_id for r in spec.runs}
    # Diverging is a result (learning rate 10 is in some studies); failing or crashing is not.
    outcomes = {link.label: (link.status, link.status_detail) for link in links}
    assert all(status in ("completed", "diverged") for status, _ in outcomes.values()), outcomes
    completed_arms = {link.arm for link in links if link.status == "completed"}
    assert completed_arms == {arm.name for arm in spec.arms}, outcomes
    for link in links:
        if link.status == "completed":
            assert [r["epoch"] for r in rows[link.run_id]] == [1]
            assert 0 <= rows[link.run_id][0]["test_acc"] <= 1

    written = write_report(out / "sweeplab.db", name, tmp_path / "report")
    html = written["html"].read_text(encoding="utf-8")
    assert written["md"].is_file() and spec.name in html
    if name == "cifar10-resnet-paper":  # the paper's numbers appear beside the measured ones
        assert "8.75" in html and "test_error_pct" in html
    if name == "palindrome-rnn":  # the study's [[figure]]: both arms against length in one figure
        assert "RNN vs LSTM: test accuracy against palindrome length" in html
    if CHROMIUM.exists():  # the page as a browser shows it: no console error, every figure in the DOM
        from test_report_browser import chromium

        dom, log, shot = chromium(written["html"], tmp_path, name)
        assert not [line for line in log.splitlines() if ":CONSOLE" in line], log[-2000:]
        assert dom.count("<img ") == html.count("<img ") >= 3 and shot.std() > 10
