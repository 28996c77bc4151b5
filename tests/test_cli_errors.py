"""Bad input: one line naming the field, the value and what is allowed; exit code 2; no traceback."""

from __future__ import annotations

import gzip
import sqlite3

import pytest
import torch

from sweeplab.cli.main import main

from helpers import sweeplab


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture
def corrupt_archive(tmp_path):
    p = tmp_path / "broken.tar.gz"
    p.write_bytes(gzip.compress(b"this is not a tar archive at all" * 10)[:120])
    return p


TRAIN_CASES = [
    (["--model", "resnet9000"], "model.name", "resnet20"),
    (["--set", "optim.lrr=0.1"], "optim.lrr", "unknown key"),
    (["--lr", "-0.1"], "optim.lr", "greater than 0"),
    (["--batch-size", "0"], "batch_size", '"max"'),
    (["--set", "model.hiddn=[3]"], "model.hiddn", "allowed"),
    (["--optimizer", "adagrad"], "optim.name", "'sgd'"),
    (["--set", "data.val_size=5000"], "data.val_size", "1437"),
    (["--dataset", "mnist", "--data-dir", "{tmp}/empty"], "data.dataset", "{tmp}/empty"),
    (["--dataset", "imagefolder", "--set", "data.path='{archive}'"], "data.path", "broken.tar.gz"),
    pytest.param(["--device", "cuda:0"], "device", "no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")),
    (["--set", "model.activation='sigmoidd'"], "model.activation", "relu"),
    (["--config", "{tmp}/missing.toml"], "missing.toml", "no such file"),
    (["--config", "{tmp}/study.toml"], "--config", "is a study file"),
    (["--set", "noequals"], "--set", "key=value"),
    (["--set", "schedule.name='multistep'"], "schedule", "milestones"),
]


@pytest.mark.parametrize("args,path,words", TRAIN_CASES,
                         ids=[(c.values if hasattr(c, "values") else c)[1] for c in TRAIN_CASES])
def test_train_bad_input(capsys, tmp_path, corrupt_archive, monkeypatch, args, path, words):
    monkeypatch.delenv("SWEEPLAB_CIFAR10", raising=False)
    monkeypatch.setenv("SWEEPLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no ./data to find datasets in
    (tmp_path / "empty").mkdir()
    (tmp_path / "study.toml").write_text('[study]\nname = "s"\n[baseline]\nepochs = 1\n')
    fmt = {"tmp": str(tmp_path), "archive": str(corrupt_archive)}
    args = [a.format(**fmt) for a in args]
    code, err = run_cli(capsys, "train", "--dataset", "digits", "--epochs", "1", "--device", "cpu",
                        "--out", str(tmp_path / "out"), *args) if "--dataset" not in args else run_cli(
        capsys, "train", "--epochs", "1", "--out", str(tmp_path / "out"), *args)
    assert code == 2, err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    text = " ".join(lines)
    assert path.format(**fmt) in text and words.format(**fmt) in text, text
    assert "Traceback" not in err


def test_bad_input_in_a_real_process_keeps_stored_runs(tmp_path):
    ok = sweeplab("train", "--dataset", "digits", "--model", "linear", "--epochs", "1", "--device", "cpu",
                  "--out", str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    bad = sweeplab("train", "--dataset", "digits", "--lr", "-1", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "optim.lr" in bad.stderr and "Traceback" not in bad.stderr
    con = sqlite3.connect(tmp_path / "sweeplab.db")
    assert con.execute("select count(*) from runs where status = 'completed'").fetchone()[0] == 1
    assert con.execute("select count(*) from epochs").fetchone()[0] == 1


GOOD = """[study]
name = "x"
seeds = 1
[baseline]
epochs = 1
data = { dataset = "digits" }
model = { name = "mlp" }
"""

STUDY_CASES = [
    ("[study\nname = 'x'", "line 1", "invalid TOML"),
    (GOOD.replace("seeds = 1", "seeds = 1\ncolour = 'red'"), "study.colour", "unknown"),
    (GOOD + "[[arm]]\nname = 'a'\noptim = { lrr = 0.1 }\n", "arm 'a'", "optim.lrr"),
    (GOOD + "[[arm]]\nname = 'a'\nepochs = 'many'\n", "arm 'a'", "epochs"),
    (GOOD + "[[arm]]\nname = 'a'\nbatch_size = []\n", "arm 'a'", "empty"),
    (GOOD + "[[arm]]\nname = 'a'\nepochs = 2\n[[arm]]\nname = 'a'\nepochs = 3\n", "'a'", "duplicate"),
    (GOOD + "[[arm]]\nname = 'a'\nmodel = { name = 'nosuch' }\n", "arm 'a'", "model.name"),
    (GOOD + "[[arm]]\nname = 'same'\nepochs = 1\n", "arm 'same'", "changes nothing"),
    (GOOD + "[[arm]]\nname = 'z'\nzip = true\noptim = { lr = [0.1, 0.2], momentum = [0.9] }\n", "arm 'z'", "length"),
    (GOOD.replace("seeds = 1", "seeds = 0"), "study.seeds", "must be >= 1 (got 0)"),
    (GOOD.replace("seeds = 1", "seeds = 1\nmetric = 'accuracy'"), "study.metric", "test_acc"),
    ("[study]\nname = 'x'\n", "baseline", "missing [baseline] table"),
    (GOOD + "[[arm]]\nname = 'neg'\noptim = { lr = [0.1, -1.0] }\n", "arm 'neg'", "optim.lr"),
    (GOOD + "[[arm]]\noptim = { lr = 0.5 }\n", "arm", "name"),
]


@pytest.mark.parametrize("text,where,words", STUDY_CASES, ids=[f"{i}:{c[1]}" for i, c in enumerate(STUDY_CASES)])
def test_malformed_study_files(capsys, tmp_path, text, where, words):
    f = tmp_path / "study.toml"
    f.write_text(text)
    code, err = run_cli(capsys, "run", str(f), "--out", str(tmp_path / "out"))
    assert code == 2, err
    one_line = " ".join(err.split())
    assert where in one_line and words in one_line, one_line
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "sweeplab.db").exists()  # nothing ran


USAGE_CASES = [
    (["serve", "--port", "99999"], "'--port'", "'99999'", "less than or equal to 65535"),
    (["serve", "--port", "abc"], "'--port'", "'abc'", "valid integer"),
    (["serve", "--port", "-1"], "'--port'", "'-1'", "greater than or equal to 0"),
    (["run", "s.toml", "--executor", "nope"], "'--executor'", "'nope'", "'local', 'ray'"),
    (["run", "s.toml", "--workers", "0"], "'--workers'", "'0'", "greater than or equal to 1"),
    (["report", "--version", "0"], "'--version'", "'0'", "greater than or equal to 1"),
    (["lr-find", "s.toml", "--steps", "1e3"], "'--steps'", "'1e3'", "valid integer"),
    (["run", "s.toml", "--bogus"], "--bogus", "--bogus", "No such option"),
    (["run"], "'study'", "'study'", "Missing argument"),
]


@pytest.mark.parametrize("args,option,given,allowed", USAGE_CASES, ids=[" ".join(c[0]) for c in USAGE_CASES])
def test_usage_errors_are_one_line(capsys, tmp_path, args, option, given, allowed):
    """The command line's own errors (type, range, unknown option) are one line like the library's,
    naming the option, the value and what is allowed (Typer printed usage, a hint and a 3-line box)."""
    code, err = run_cli(capsys, *args, *(["--out", str(tmp_path)] if args[0] in ("serve", "report") else []))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and option in lines[0] and given in lines[0] and allowed in lines[0]
    assert f"see sweeplab {args[0]} --help" in lines[0] and not any(tmp_path.iterdir())
