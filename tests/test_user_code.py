"""Issue 9: the user's own models and data from a code file next to the study.

The CLI runs in this process (the real entry point, ``sweeplab.cli.main.main``) on tiny digits
studies; every bad input is checked for exit code 2, one line naming the file, line or key, and
an unchanged store.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

from sweeplab.cli.main import main
from sweeplab.config import RunConfig
from sweeplab.errors import ConfigError
from sweeplab.store import Store
from sweeplab.study import load_study
from sweeplab.resolve import run_id

NETS = '''\
import torch
from torch import nn

SCALE = 1.0


class CoolNet(nn.Module):
    """LeNet-ish with BatchNorm, the student's own."""

    def __init__(self, input_shape, num_classes, width=8):
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.fc1 = nn.Linear(width * (input_shape[1] // 2) * (input_shape[2] // 2), num_classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        return self.fc1(x.flatten(1)) * SCALE


def boring(num_classes):
    """A lazy linear layer."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
'''

STUDY = '''\
[study]
name = "own"
seeds = 1

[baseline]
epochs = 1
batch_size = 64
device = "cpu"
data = {{ dataset = "digits", train_subset = 200, test_subset = 100 }}
model = {{ name = "{model}"{options} }}
optim = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}

[[arm]]
name = "boring"
model = {{ name = "nets.py:boring" }}
'''


def write(tmp_path: Path, nets: str = NETS, model: str = "nets.py:CoolNet", options: str = "") -> Path:
    (tmp_path / "nets.py").write_text(nets)
    study = tmp_path / "study.toml"
    study.write_text(STUDY.format(model=model, options=options))
    return study


def dump(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


@pytest.fixture
def stored(tmp_path):
    """A store that already holds a finished study of the user's code (the 'nothing lost' part)."""
    study = write(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--workers", "1"]) == 0
    return study, out, dump(out / "sweeplab.db")


def run_bad(capsys, study: Path, out: Path, *extra: str) -> str:
    capsys.readouterr()
    rc = main(["run", str(study), "--out", str(out), "--workers", "1", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_own_models_train_and_carry_their_code(stored, capsys):
    study, out, _ = stored
    with Store(out / "sweeplab.db", readonly=True) as store:
        runs = store.list_runs(study="own")
        assert {r.status for r in runs} == {"completed"}
        configs = [RunConfig.model_validate(r.config) for r in runs]
    # the stored config holds the file's text, so any worker (or machine) trains exactly that code
    assert all(c.code["nets.py"].source == NETS for c in configs)
    assert {c.model.name for c in configs} == {"nets.py:CoolNet", "nets.py:boring"}
    # the lazy layer was sized before counting: 64 inputs * 10 classes + 10
    boring = next(r for r in runs if r.config["model"]["name"] == "nets.py:boring")
    assert boring.params == 650


def test_show_code_prints_the_code_a_run_trained_with(stored, capsys):
    study, out, _ = stored
    with Store(out / "sweeplab.db", readonly=True) as store:
        run_id = store.list_runs(study="own")[0].id
    capsys.readouterr()
    assert main(["show-code", run_id[:6], "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    first, rest = printed.split("\n", 1)
    assert first.startswith("# nets.py  sha256 ") and run_id in first
    assert rest == NETS
    # editing the file later does not change what the stored run shows
    (study.parent / "nets.py").write_text(NETS.replace("width=8", "width=4"))
    assert main(["show-code", run_id, "--out", str(out)]) == 0
    assert capsys.readouterr().out.split("\n", 1)[1] == NETS


def test_identity_follows_the_code_the_run_uses(tmp_path):
    study = write(tmp_path)
    ids = {r.arm: r.run_id for r in load_study(study).runs}
    # a comment, a docstring or blank lines: the same runs
    (tmp_path / "nets.py").write_text("# my networks\n\n" + NETS.replace("    def forward", "\n    def forward")
                                      .replace("the student's own", "written for the course"))
    assert {r.arm: r.run_id for r in load_study(study).runs} == ids
    # CoolNet edited: its run is new, boring's is not
    (tmp_path / "nets.py").write_text(NETS.replace("torch.relu", "torch.tanh"))
    after = {r.arm: r.run_id for r in load_study(study).runs}
    assert after["boring"] == ids["boring"] and after["baseline"] != ids["baseline"]
    # a module-level line the models may use: both are new
    (tmp_path / "nets.py").write_text(NETS.replace("SCALE = 1.0", "SCALE = 2.0"))
    after = {r.arm: r.run_id for r in load_study(study).runs}
    assert after["boring"] != ids["boring"] and after["baseline"] != ids["baseline"]


def test_code_survives_the_json_hand_over_and_refuses_tampering(tmp_path):
    cfg = load_study(write(tmp_path)).runs[0].config
    again = RunConfig.from_json(cfg.to_json())
    assert again == cfg and run_id(again) == run_id(cfg)
    data = json.loads(cfg.to_json())
    data["code"]["nets.py"]["source"] += "\nimport os\n"
    with pytest.raises(Exception, match="sha256 does not match"):
        RunConfig.model_validate(data)


def test_unknown_option_names_the_key_and_the_allowed_ones(stored, capsys):
    study, out, before = stored
    write(study.parent, options=", depth = 3")
    err = run_bad(capsys, study, out)
    assert "baseline.model.depth" in err and "'nets.py:CoolNet'" in err and "width" in err
    assert dump(out / "sweeplab.db") == before


BAD_CODE = {
    "missing file": (None, "nets.py:CoolNet", ["nets.py: no such file", "relative to the study"]),
    "syntax error": (NETS.replace("def boring(num_classes):", "def boring(num_classes)"), "nets.py:CoolNet",
                     [f"nets.py:{NETS.splitlines().index('def boring(num_classes):') + 1}: SyntaxError: expected ':'"]),
    "import error": ("import torchh\n" + NETS, "nets.py:CoolNet", ["nets.py:1: ModuleNotFoundError:", "torchh"]),
    "name not in the file": (NETS, "nets.py:CoolNett", ["nets.py has no 'CoolNett'", "CoolNet, boring"]),
    "not a model": (NETS + "\nclass Helper:\n    pass\n", "nets.py:Helper", ["not an nn.Module"]),
    "not callable": (NETS + "\nWIDTH = 3\n", "nets.py:WIDTH", ["is an int", "nn.Module class or a function"]),
    "build fails": (NETS.replace("super().__init__()", "super().__init__()\n        assert width < 4, 'too wide'"),
                    "nets.py:CoolNet", ["building nets.py:CoolNet", "AssertionError: too wide"]),
    "forward fails on the shape": (NETS.replace("// 2) * (input_shape[2] // 2)", "// 4) * (input_shape[2] // 4)"),
                                   "nets.py:CoolNet",
                                   ["baseline.model.name: nets.py:CoolNet on input (1, 8, 8):",
                                    "mat1 and mat2 shapes cannot be multiplied"]),
    "wrong output shape": (NETS.replace("return self.fc1(x.flatten(1)) * SCALE", "return x"), "nets.py:CoolNet",
                           ["returns shape (2, 8, 4, 4)", "(batch, classes) = (2, 10)"]),
    "not a module returned": (NETS + "\ndef maker():\n    return 3\n", "nets.py:maker", ["returned an int, not an nn.Module"]),
    "built-in name taken": ("import sweeplab\n" + NETS + "\n@sweeplab.register_model('mlp')\ndef mine():\n"
                            "    return None\n", "nets.py:CoolNet", ["'mlp' is a built-in model"]),
    "option without a default": (NETS.replace("width=8", "width"), "nets.py:CoolNet",
                                 ["parameter 'width' needs a default"]),
    # found by an adversarial pass: an exit is a failure, emoji codes stay text, logits are floats
    "sys.exit at import": ("import sys\nsys.exit(0)\n" + NETS, "nets.py:CoolNet", ["nets.py:2: SystemExit: 0"]),
    "sys.exit in forward": (NETS.replace("    def forward(self, x):\n", "    def forward(self, x):\n        raise SystemExit(3)\n"),
                            "nets.py:CoolNet", ["baseline.model.name: nets.py:CoolNet on input (1, 8, 8): SystemExit: 3"]),
    "integer logits": (NETS.replace("return self.fc1(x.flatten(1)) * SCALE", "return (self.fc1(x.flatten(1)) * SCALE).long()"),
                       "nets.py:CoolNet", ["returns torch.int64 logits", "float logits"]),
    "a name like an emoji code": (NETS + "\nclass M(nn.Module):\n    def __init__(self, depth):\n        super().__init__()\n",
                                  "nets.py:M", ["nets.py:M: parameter 'depth' needs a default"]),
    "sibling import": ("import my_layers\n" + NETS, "nets.py:CoolNet",
                       ["nets.py:1: ModuleNotFoundError:", "copy what it uses from my_layers.py into nets.py"]),
}


@pytest.mark.parametrize("case", list(BAD_CODE))
def test_bad_code_is_one_line_exit_2_and_the_store_is_unchanged(stored, capsys, case):
    study, out, before = stored
    nets, model, expected = BAD_CODE[case]
    (study.parent / "nets.py").unlink()
    if nets is not None:
        (study.parent / "nets.py").write_text(nets)
    study.write_text(STUDY.format(model=model, options=""))
    err = run_bad(capsys, study, out)
    for text in expected:
        assert text in err, err
    assert dump(out / "sweeplab.db") == before


DATA = '''\
import numpy as np


def load():
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = np.zeros((120, 8, 8, 3), dtype=np.uint8)   # NHWC images: class k lights up row k
    for i, k in enumerate(y):
        x[i, k] = 200
    x = np.clip(x.astype(int) + rng.integers(0, 40, x.shape), 0, 255).astype(np.uint8)
    return {"x_train": x[:90], "y_train": y[:90], "x_test": x[90:], "y_test": y[90:],
            "classes": ["top", "middle", "bottom"]}


def short():
    x = np.zeros((10, 4), dtype=np.float32)
    return x, np.zeros(9, dtype=np.int64), x, np.zeros(10, dtype=np.int64)


def out_of_range():
    x = np.zeros((10, 4), dtype=np.float32)
    return x, np.arange(10), x, np.arange(10), ["a", "b"]


def empty():
    x = np.zeros((0, 4), dtype=np.float32)
    return x, np.zeros(0, dtype=np.int64), x, np.zeros(0, dtype=np.int64)
'''


def data_study(tmp_path: Path, fn: str) -> Path:
    (tmp_path / "mydata.py").write_text(DATA)
    study = tmp_path / "data.toml"
    study.write_text(textwrap.dedent(f'''\
        [study]
        name = "own-data"
        seeds = 1

        [baseline]
        epochs = 3
        batch_size = 16
        device = "cpu"
        data = {{ dataset = "mydata.py:{fn}", augment = {{ hflip = true }} }}
        model = {{ name = "simple_cnn" }}
        optim = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}
        '''))
    return study


def test_own_data_function_trains_like_any_dataset(tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(data_study(tmp_path, "load")), "--out", str(out), "--workers", "1"]) == 0
    with Store(out / "sweeplab.db", readonly=True) as store:
        (run,) = store.list_runs(study="own-data")
        rows = store.epochs(run.id)
    assert run.status == "completed" and len(rows) == 3
    assert run.data_source.startswith("mydata.py:load") and len(run.data_checksum) == 64
    assert len(rows[-1]["test_per_class_acc"]) == 3  # three classes, from the function's labels
    assert rows[-1]["test_acc"] > 0.5  # the rows are easy to tell apart: it learned from these images
    # the report labels classes with the names the function gave (issue 11, item 2)
    assert main(["report", "own-data", "--out", str(out), "--format", "md"]) == 0
    md = (out / "reports" / "own-data" / "report.md").read_text()
    assert "| arm setting | top | middle | bottom |" in md


@pytest.mark.parametrize("fn,expected", [
    ("short", "y_train must be 10 integer labels"),
    ("out_of_range", "2 class names but labels go up to 9"),
    ("nothing", "mydata.py has no 'nothing'"),
])
def test_bad_data_functions_are_one_line_exit_2(tmp_path, capsys, fn, expected):
    out = tmp_path / "out"
    out.mkdir()
    Store(out / "sweeplab.db").close()
    before = dump(out / "sweeplab.db")
    err = run_bad(capsys, data_study(tmp_path, fn), out)
    assert expected in err and "data.dataset" in err, err
    assert dump(out / "sweeplab.db") == before


def test_summary_and_models_show_the_users_own_network(tmp_path, capsys, monkeypatch):
    write(tmp_path)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["summary", "nets.py:CoolNet", "--dataset", "cifar10", "--set", "model.width=4"]) == 0
    text = capsys.readouterr().out
    layers = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert layers == ["conv1", "bn1", "fc1"]
    conv, bn, fc = 3 * 4 * 9 + 4, 2 * 4, (4 * 16 * 16) * 10 + 10
    assert f"total params: {conv + bn + fc:,}" in text
    assert main(["models", "--study", "study.toml"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if "nets.py:CoolNet" in line)
    assert "width=8" in row and "LeNet-ish" in row
    assert any("nets.py:boring" in line for line in table.splitlines())


def test_report_names_each_code_file_and_its_hash(stored, capsys):
    import hashlib

    study, out, _ = stored
    assert main(["report", "own", "--out", str(out), "--format", "md"]) == 0
    md = (out / "reports" / "own" / "report.md").read_text()
    sha = hashlib.sha256(NETS.encode()).hexdigest()
    assert f"| Your code | nets.py sha256 {sha[:12]} (2 runs) |" in md


def test_register_model_refuses_built_in_names_and_bad_kinds():
    from sweeplab import register_model

    with pytest.raises(ConfigError, match="'resnet20' is a built-in model"):
        register_model("resnet20")
    with pytest.raises(ConfigError, match="inputs='pixels'"):
        register_model("mine", inputs="pixels")


def test_dry_run_refuses_what_run_would_refuse(stored, capsys):
    study, out, before = stored
    (study.parent / "nets.py").write_text(BAD_CODE["forward fails on the shape"][0])
    err = run_bad(capsys, study, out, "--dry-run")
    assert "mat1 and mat2 shapes cannot be multiplied" in err
    assert dump(out / "sweeplab.db") == before


def test_an_exit_while_training_fails_that_run_and_the_study_goes_on(tmp_path, capsys):
    # preflight runs the model in eval mode, so this one passes it and exits in its first training step
    nets = NETS.replace("    def forward(self, x):\n", "    def forward(self, x):\n        if self.training:\n"
                        "            raise SystemExit(3)\n")
    study = write(tmp_path, nets=nets)
    out = tmp_path / "out"
    main(["run", str(study), "--out", str(out), "--workers", "1"])
    with Store(out / "sweeplab.db", readonly=True) as store:
        runs = {r.config["model"]["name"]: r for r in store.list_runs(study="own")}
    assert runs["nets.py:CoolNet"].status == "failed" and runs["nets.py:CoolNet"].status_detail == "SystemExit: 3"
    assert runs["nets.py:boring"].status == "completed"


def test_empty_data_is_refused_in_one_line(tmp_path, capsys):
    err = run_bad(capsys, data_study(tmp_path, "empty"), tmp_path / "out")
    assert "mydata.py:empty(): x_train is empty" in err, err


def test_register_model_used_as_a_function_says_how_to_call_it():
    from sweeplab import register_model

    with pytest.raises(ConfigError, match="is a decorator"):
        register_model("mine", lambda num_classes: None)
