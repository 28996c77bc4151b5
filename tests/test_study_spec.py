"""Study files: parsing, validation with arm + key path in every error, and expansion into runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sweeplab.errors import ConfigError
from sweeplab.study import ArmSpec, RunSpec, StudySpec, load_study, parse_study
from sweeplab.resolve import run_id

EXAMPLE = """\
[study]
name = "cifar10-batch-and-lr"
description = "Effect of batch size and learning rate on the tutorial CNN"
seeds = 3
metric = "test_acc"
reference = { baseline = { test_acc = 0.54, source = "pytorch tutorial" } }

[baseline]
epochs = 50
batch_size = 4
data  = { dataset = "cifar10" }
model = { name = "tutorial_cnn" }
optim = { name = "sgd", lr = 0.001, momentum = 0.9 }

[[arm]]
name = "single linear layer"
model = { name = "linear" }

[[arm]]
name = "batch size"
description = "from SGD-like to nearly full batch"
batch_size = [1, 4, 1000]

[[arm]]
name = "lr x optimizer"
optim = { lr = [10, 0.1, 0.01, 0.001], name = ["sgd", "adam"] }

[[arm]]
name = "paired"
zip = true
optim = { lr = [0.1, 0.01], momentum = [0.0, 0.9] }
"""

HEAD = """\
[study]
name = "t"
seeds = 1

[baseline]
epochs = 2
data = { dataset = "digits" }
model = { name = "mlp", hidden = [32] }
optim = { name = "sgd", lr = 0.1 }
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def study(tmp_path: Path, arms: str = "", head: str = HEAD, **kw) -> StudySpec:
    return load_study(write(tmp_path, head + textwrap.dedent(arms)), **kw)


def labels(spec: StudySpec) -> list[str]:
    """Distinct labels in run order."""
    return list(dict.fromkeys(r.label for r in spec.runs))


# -- expansion ----------------------------------------------------------------------------------------
def test_example_study_expands_arms_grids_and_seeds(tmp_path):
    spec = load_study(write(tmp_path, EXAMPLE))
    assert spec.name == "cifar10-batch-and-lr" and spec.metric == "test_acc"
    assert spec.seeds == (0, 1, 2)
    assert spec.reference == {"baseline": {"test_acc": 0.54, "source": "pytorch tutorial"}}
    assert [a.name for a in spec.arms] == ["baseline", "single linear layer", "batch size", "lr x optimizer", "paired"]
    assert [a.position for a in spec.arms] == [0, 1, 2, 3, 4]
    assert spec.arm("batch size").axes == ["batch_size"]
    assert spec.arm("batch size").description == "from SGD-like to nearly full batch"
    assert spec.arm("lr x optimizer").axes == ["optim.lr", "optim.name"]
    assert spec.arm("paired").zip and spec.arm("paired").axes == ["optim.lr", "optim.momentum"]
    assert spec.arm("baseline").override == {}
    assert spec.arm("single linear layer").override == {"model": {"name": "linear"}}
    # grid points x seeds per arm: 1 + 1 + 3 + 4*2 + 2
    assert len(spec.runs) == (1 + 1 + 3 + 8 + 2) * 3
    assert [r.position for r in spec.runs] == list(range(len(spec.runs)))
    assert labels(spec) == [
        "baseline",
        "single linear layer",
        "batch size: batch_size=1",
        "batch size: batch_size=4",
        "batch size: batch_size=1000",
        # cartesian product, first axis slowest
        "lr x optimizer: optim.lr=10, optim.name=sgd",
        "lr x optimizer: optim.lr=10, optim.name=adam",
        "lr x optimizer: optim.lr=0.1, optim.name=sgd",
        "lr x optimizer: optim.lr=0.1, optim.name=adam",
        "lr x optimizer: optim.lr=0.01, optim.name=sgd",
        "lr x optimizer: optim.lr=0.01, optim.name=adam",
        "lr x optimizer: optim.lr=0.001, optim.name=sgd",
        "lr x optimizer: optim.lr=0.001, optim.name=adam",
        # zip pairs element-wise
        "paired: optim.lr=0.1, optim.momentum=0.0",
        "paired: optim.lr=0.01, optim.momentum=0.9",
    ]
    # seeds vary fastest, and set each run's seed
    assert [r.seed for r in spec.runs[:6]] == [0, 1, 2, 0, 1, 2]
    assert all(r.config.seed == r.seed for r in spec.runs)
    # the study's metric is every run's best_metric
    assert {r.config.best_metric for r in spec.runs} == {"test_acc"}
    # resolved configs: arm merged into the baseline
    lin = spec.runs_of("single linear layer")[0].config
    assert (lin.model.name, lin.optim.lr, lin.epochs, lin.batch_size) == ("linear", 0.001, 50, 4)
    adam = next(r for r in spec.runs if r.label == "lr x optimizer: optim.lr=0.1, optim.name=adam")
    assert (adam.config.optim.name, adam.config.optim.lr, adam.config.optim.momentum) == ("adam", 0.1, 0.9)
    assert adam.axes == {"optim.lr": 0.1, "optim.name": "adam"}
    paired = spec.runs_of("paired")
    assert [(r.config.optim.lr, r.config.optim.momentum) for r in paired[::3]] == [(0.1, 0.0), (0.01, 0.9)]
    assert spec.runs_of("baseline")[0].axes == {} and spec.runs_of("single linear layer")[0].axes == {}
    assert all(r.run_id == run_id(r.config) for r in spec.runs)


def test_shared_runs_keep_both_links_and_unique_runs_deduplicates(tmp_path):
    spec = load_study(write(tmp_path, EXAMPLE))
    base = spec.runs_of("baseline")
    same_bs = [r for r in spec.runs if r.label == "batch size: batch_size=4"]
    same_lr = [r for r in spec.runs if r.label == "lr x optimizer: optim.lr=0.001, optim.name=sgd"]
    assert [r.run_id for r in base] == [r.run_id for r in same_bs] == [r.run_id for r in same_lr]
    # paired lr=0.01/momentum=0.9 is the lr x optimizer point lr=0.01/sgd (baseline momentum is 0.9)
    p = [r for r in spec.runs if r.label == "paired: optim.lr=0.01, optim.momentum=0.9"]
    g = [r for r in spec.runs if r.label == "lr x optimizer: optim.lr=0.01, optim.name=sgd"]
    assert [r.run_id for r in p] == [r.run_id for r in g]

    unique = spec.unique_runs()
    assert len(unique) == len(spec.runs) - 3 * 3  # two shares of the baseline, one paired point
    assert len({r.run_id for r in unique}) == len(unique)
    assert unique[0] is spec.runs[0]  # first occurrence wins, in run order
    assert [r.position for r in unique] == sorted(r.position for r in unique)


def test_two_arms_resolving_to_the_same_config_share_a_run(tmp_path):
    spec = study(tmp_path, """
        [[arm]]
        name = "adam"
        optim = { name = "adam" }

        [[arm]]
        name = "adam again, spelled differently"
        optim = { lr = 0.1, name = "adam", betas = [0.9, 0.999] }
    """)
    a, b = spec.runs_of("adam"), spec.runs_of("adam again, spelled differently")
    assert a[0].run_id == b[0].run_id
    assert (a[0].label, b[0].label) == ("adam", "adam again, spelled differently")
    assert len(spec.runs) == 3 and len(spec.unique_runs()) == 2


def test_seeds_as_list_and_baseline_excluded(tmp_path):
    head = HEAD.replace("seeds = 1", "seeds = [7, 3]\ninclude_baseline = false")
    spec = study(tmp_path, """
        [[arm]]
        name = "wide"
        model = { hidden = [256] }
    """, head=head)
    assert spec.seeds == (7, 3) and not spec.include_baseline
    assert [a.name for a in spec.arms] == ["wide"] and spec.arms[0].position == 0
    assert [(r.arm, r.seed, r.label) for r in spec.runs] == [("wide", 7, "wide"), ("wide", 3, "wide")]
    assert spec.runs[0].run_id != spec.runs[1].run_id  # the seed is part of the identity
    assert spec.runs[0].config.model.options() == {"hidden": [256]}


def test_seeds_default_to_one(tmp_path):
    spec = study(tmp_path, head=HEAD.replace("seeds = 1\n", ""))
    assert spec.seeds == (0,) and len(spec.runs) == 1 and spec.runs[0].label == "baseline"


def test_list_natured_fields_flat_list_is_a_value_list_of_lists_is_an_axis(tmp_path):
    spec = study(tmp_path, """
        [[arm]]
        name = "depth"
        model = { name = "mlp", hidden = [[64], [128, 64]] }

        [[arm]]
        name = "one mlp"
        model = { name = "mlp", hidden = [128, 64] }

        [[arm]]
        name = "multistep"
        schedule = { name = "multistep", milestones = [1, 2] }

        [[arm]]
        name = "betas"
        optim = { name = "adam", betas = [[0.9, 0.999], [0.5, 0.9]] }

        [[arm]]
        name = "norm"
        data = { mean = [0.5], std = [0.25], augment = { rrc_scale = [[0.08, 1.0], [0.5, 1.0]] } }
    """)
    depth = spec.runs_of("depth")
    assert [r.config.model.options()["hidden"] for r in depth] == [[64], [128, 64]]
    assert [r.label for r in depth] == ["depth: model.hidden=[64]", "depth: model.hidden=[128, 64]"]
    assert depth[1].axes == {"model.hidden": [128, 64]}
    assert spec.arm("depth").axes == ["model.hidden"]

    one = spec.runs_of("one mlp")
    assert len(one) == 1 and one[0].label == "one mlp" and one[0].config.model.options()["hidden"] == [128, 64]
    assert spec.arm("one mlp").axes == []
    ms = spec.runs_of("multistep")
    assert len(ms) == 1 and ms[0].config.schedule.milestones == [1, 2]
    assert [r.config.optim.betas for r in spec.runs_of("betas")] == [(0.9, 0.999), (0.5, 0.9)]
    norm = spec.runs_of("norm")
    assert [r.config.data.augment.rrc_scale for r in norm] == [(0.08, 1.0), (0.5, 1.0)]
    assert norm[0].config.data.mean == [0.5] and spec.arm("norm").axes == ["data.augment.rrc_scale"]


def test_model_option_list_nature_depends_on_the_model(tmp_path):
    # rnn's `hidden` is an int, so a flat list of ints is an axis there; for mlp it is one value.
    head = HEAD.replace('data = { dataset = "digits" }', 'data = { dataset = "palindrome" }') \
               .replace('model = { name = "mlp", hidden = [32] }', 'model = { name = "rnn" }')
    spec = study(tmp_path, """
        [[arm]]
        name = "rnn width"
        model = { hidden = [16, 64] }
    """, head=head)
    assert [r.config.model.options()["hidden"] for r in spec.runs_of("rnn width")] == [16, 64]
    assert spec.arm("rnn width").axes == ["model.hidden"]


def test_grid_over_model_names_drops_the_other_models_options(tmp_path):
    spec = study(tmp_path, """
        [[arm]]
        name = "family"
        model = { name = ["linear", "simple_cnn"] }
    """)
    fam = spec.runs_of("family")
    assert [r.label for r in fam] == ["family: model.name=linear", "family: model.name=simple_cnn"]
    assert [r.config.model.options() for r in fam] == [{}, {}]  # baseline's mlp `hidden` dropped


def test_batch_size_max_and_three_axis_grid_order(tmp_path):
    spec = study(tmp_path, """
        [[arm]]
        name = "g"
        batch_size = ["max", 8]
        optim = { lr = [0.1, 0.2, 0.3] }
        epochs = [3, 4]
    """)
    assert spec.arm("g").axes == ["batch_size", "optim.lr", "epochs"]
    pts = [(r.config.batch_size, r.config.optim.lr, r.config.epochs) for r in spec.runs_of("g")]
    assert len(pts) == 12 and pts[:3] == [("max", 0.1, 3), ("max", 0.1, 4), ("max", 0.2, 3)]
    assert pts[-1] == (8, 0.3, 4)
    assert spec.runs_of("g")[0].label == "g: batch_size=max, optim.lr=0.1, epochs=3"


def test_run_ids_do_not_depend_on_key_order(tmp_path):
    a = write(tmp_path, """
        [study]
        name = "order"
        seeds = 2
        [baseline]
        epochs = 3
        batch_size = 16
        model = { name = "mlp", hidden = [8], activation = "tanh" }
        optim = { name = "adam", lr = 0.01 }
        [[arm]]
        name = "x"
        optim = { lr = [0.1, 0.2] }
    """, "a.toml")
    b = write(tmp_path, """
        [baseline]
        optim = { lr = 0.01, name = "adam" }
        model = { activation = "tanh", hidden = [8], name = "mlp" }
        batch_size = 16
        epochs = 3
        [[arm]]
        optim = { lr = [0.1, 0.2] }
        name = "x"
        [study]
        seeds = 2
        name = "order"
    """, "b.toml")
    ids_a = [(r.label, r.seed, r.run_id) for r in load_study(a).runs]
    ids_b = [(r.label, r.seed, r.run_id) for r in load_study(b).runs]
    assert ids_a == ids_b and len(ids_a) == 6


def test_run_ids_are_stable_across_processes(tmp_path):
    path = write(tmp_path, EXAMPLE)
    here = [r.run_id for r in load_study(path).runs]
    code = ("import json, sys; from sweeplab.study import load_study; "
            "print(json.dumps([r.run_id for r in load_study(sys.argv[1]).runs]))")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                         check=True)
    assert json.loads(out.stdout) == here


def test_cli_overrides_set_seeds_epochs(tmp_path):
    path = write(tmp_path, EXAMPLE)
    plain = load_study(path)
    spec = load_study(path, overrides=["data.train_subset=100", "optim.momentum=0.5"], seeds=2, epochs=1)
    assert spec.seeds == (0, 1)
    # same arms and grid points; an axis the --set overrides shows its resolved value
    assert labels(spec)[:13] == labels(plain)[:13]
    assert labels(spec)[13:] == ["paired: optim.lr=0.1, optim.momentum=0.5", "paired: optim.lr=0.01, optim.momentum=0.5"]
    assert len(spec.runs) == len(plain.runs) // 3 * 2
    for r in spec.runs:  # applied on top of every resolved arm, baseline included
        assert (r.config.epochs, r.config.data.train_subset, r.config.optim.momentum) == (1, 100, 0.5)
    assert spec.runs_of("lr x optimizer")[2].config.optim.name == "adam"  # arm values survive
    assert {r.run_id for r in spec.runs}.isdisjoint(r.run_id for r in plain.runs)
    assert spec.cli_overrides == {"set": ["data.train_subset=100", "optim.momentum=0.5"], "seeds": 2, "epochs": 1}
    assert spec.to_dict()["cli_overrides"] == spec.cli_overrides


def test_epochs_flag_wins_over_set_epochs_and_arm_epochs(tmp_path):
    spec = study(tmp_path, """
        [[arm]]
        name = "long"
        epochs = 30
    """, overrides=["epochs=5"], epochs=2)
    assert {r.config.epochs for r in spec.runs} == {2}
    # "long" now resolves to the baseline's run: shared across arms, which is allowed
    assert spec.runs_of("long")[0].run_id == spec.runs_of("baseline")[0].run_id


def test_overrides_that_merge_grid_points_warn_and_list_the_run_once(tmp_path):
    spec = study(tmp_path, """
        [[arm]]
        name = "length"
        epochs = [3, 5, 8]
    """, epochs=1)
    runs = spec.runs_of("length")
    assert len(runs) == 1 and runs[0].config.epochs == 1
    assert runs[0].label == "length: epochs=1" and runs[0].axes == {"epochs": 1}  # resolved values
    assert len(spec.warnings) == 2 and all("arm 'length'" in w and "listed once" in w for w in spec.warnings)


def test_to_json_round_trips_through_json(tmp_path):
    spec = load_study(write(tmp_path, EXAMPLE), epochs=1)
    d = json.loads(spec.to_json())
    assert d["name"] == spec.name and d["seeds"] == [0, 1, 2] and d["metric"] == "test_acc"
    assert [a["name"] for a in d["arms"]] == [a.name for a in spec.arms]
    assert d["arms"][3]["override"] == {"optim": {"lr": [10, 0.1, 0.01, 0.001], "name": ["sgd", "adam"]}}
    assert [r["run_id"] for r in d["runs"]] == [r.run_id for r in spec.runs]
    assert d["source"] == EXAMPLE and d["baseline"]["batch_size"] == 4
    assert d["cli_overrides"] == {"epochs": 1}


def test_parse_study_and_load_study_accept_text(tmp_path):
    a = parse_study(EXAMPLE, "example.toml")
    b = load_study(EXAMPLE)
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert a.source == EXAMPLE
    assert isinstance(a.runs[0], RunSpec) and isinstance(a.arms[0], ArmSpec)


def test_val_metric_with_a_val_split(tmp_path):
    head = HEAD.replace('seeds = 1', 'seeds = 1\nmetric = "val_acc"') \
               .replace('data = { dataset = "digits" }', 'data = { dataset = "digits", val_size = 100 }')
    spec = study(tmp_path, head=head)
    assert spec.metric == "val_acc" and spec.runs[0].config.best_metric == "val_acc"


# -- malformed study files ------------------------------------------------------------------------------
BAD = [
    pytest.param(
        HEAD + '[[arm]]\nname = "x"\noptim = { lr = 0.1 \n',
        ["study.toml", "invalid TOML", "line 12"], id="bad-toml"),
    pytest.param(
        HEAD.replace("seeds = 1", "seeds = 1\nseedz = 3"),
        ["study.seedz", "unknown key"], id="unknown-study-key"),
    pytest.param(
        HEAD + '[[arm]]\nname = "x"\nepoch = 3\n',
        ["arm 'x'.epoch", "unknown key"], id="unknown-arm-key"),
    pytest.param(
        HEAD + '[[arm]]\nname = "x"\noptim = { lrr = 0.3 }\n',
        ["arm 'x'.optim.lrr", "unknown key"], id="unknown-nested-arm-key"),
    pytest.param(
        HEAD + '[[arm]]\nname = "x"\nepochs = "ten"\n',
        ["arm 'x'.epochs", "integer", "'ten'"], id="wrong-type"),
    pytest.param(
        HEAD + '[[arm]]\nname = "batch size"\nbatch_size = [4, 0]\n',
        ["arm 'batch size'.batch_size", "got 0", "grid point batch_size=0"],
        id="out-of-range-in-grid"),
    pytest.param(
        HEAD + '[[arm]]\nname = "x"\noptim = { lr = [] }\n',
        ["arm 'x'.optim.lr", "empty grid"], id="empty-grid"),
    pytest.param(
        HEAD + '[[arm]]\nname = "x"\nepochs = 3\n[[arm]]\nname = "x"\nepochs = 4\n',
        ["arm 'x'", "duplicate arm name"], id="duplicate-arm"),
    pytest.param(
        HEAD + '[[arm]]\nname = "baseline"\nepochs = 4\n',
        ["arm 'baseline'", "duplicate arm name", "include_baseline"], id="arm-named-baseline"),
    pytest.param(
        HEAD + '[[arm]]\nname = "same"\noptim = { lr = 0.1, name = "sgd" }\nepochs = 2\n',
        ["arm 'same'", "changes nothing", "optim.lr", "epochs"], id="arm-changes-nothing"),
    pytest.param(
        HEAD + '[[arm]]\nname = "empty"\ndescription = "forgot the override"\n',
        ["arm 'empty'", "changes nothing", "no run config keys"], id="arm-sets-nothing"),
    pytest.param(
        HEAD + '[[arm]]\nname = "resnet"\nmodel = { name = "resnet9000" }\n',
        ["arm 'resnet'.model.name", "unknown model 'resnet9000'"], id="unknown-model"),
    pytest.param(
        HEAD + '[[arm]]\nname = "x"\nmodel = { name = "linear", hidden = [8] }\n',
        ["arm 'x'.model.hidden", "unknown option"], id="option-of-another-model"),
    pytest.param(
        HEAD + '[[arm]]\nname = "paired"\nzip = true\noptim = { lr = [0.1, 0.01], momentum = [0.0, 0.5, 0.9] }\n',
        ["arm 'paired'", "equal length", "optim.lr has 2", "optim.momentum has 3"], id="zip-unequal"),
    pytest.param(
        HEAD.split("[baseline]")[0] + '[[arm]]\nname = "x"\nepochs = 3\n',
        ["missing [baseline]"], id="missing-baseline"),
    pytest.param(
        HEAD.replace('name = "t"\n', ""),
        ["study.name", "missing"], id="missing-study-name"),
    pytest.param(
        HEAD.replace("[study]", "[studdy]"),
        ["studdy", "unknown top-level"], id="unknown-table"),
    pytest.param(HEAD.replace("seeds = 1", "seeds = 0"), ["study.seeds", ">= 1"], id="seeds-zero"),
    pytest.param(HEAD.replace("seeds = 1", "seeds = []"), ["study.seeds", "empty seed list"], id="seeds-empty"),
    pytest.param(HEAD.replace("seeds = 1", "seeds = [1, 2, 1]"), ["study.seeds", "duplicate seeds [1]"],
                 id="seeds-duplicate"),
    pytest.param(HEAD.replace("seeds = 1", "seeds = [0, -1]"), ["study.seeds", "-1"], id="seeds-negative"),
    pytest.param(HEAD.replace("seeds = 1", 'seeds = "3"'), ["study.seeds", "'3'"], id="seeds-string"),
    pytest.param(HEAD.replace("seeds = 1", 'metric = "accuracy"'), ["study.metric", "'accuracy'", "test_acc"],
                 id="unknown-metric"),
    pytest.param(HEAD.replace("seeds = 1", 'metric = "val_loss"'),
                 ["baseline.data", "val_loss", "validation split", "val_size"], id="val-metric-without-split"),
    pytest.param(HEAD.replace("epochs = 2", "epochs = 2\nseed = 42"), ["baseline.seed", "[study] seeds"],
                 id="seed-in-baseline"),
    pytest.param(HEAD + '[[arm]]\nname = "x"\nseed = 1\n', ["arm 'x'.seed", "[study] seeds"], id="seed-in-arm"),
    pytest.param(HEAD + '[[arm]]\nname = "x"\nbest_metric = "test_loss"\n', ["arm 'x'.best_metric", "[study] metric"],
                 id="best-metric-in-arm"),
    pytest.param(HEAD.replace("epochs = 2", "epochs = [2, 3]"), ["baseline.epochs", "grid", "[[arm]]"],
                 id="grid-in-baseline"),
    pytest.param(HEAD.replace("lr = 0.1", "lr = -0.1"), ["baseline.optim.lr", "greater than 0"],
                 id="bad-baseline-value"),
    pytest.param(HEAD + '[[arm]]\nname = "x"\noptim = { lr = [0.1, 0.1] }\n',
                 ["arm 'x'", "optim.lr=0.1 and optim.lr=0.1", "same config"], id="duplicate-grid-point"),
    pytest.param(HEAD + '[[arm]]\nname = "x"\nmodel = { hidden = [[64], 32] }\n',
                 ["arm 'x'.model.hidden", "mixes lists"], id="mixed-list-natured"),
    pytest.param(HEAD + '[[arm]]\nepochs = 3\n', ["arm #1", "missing name"], id="arm-without-name"),
    pytest.param(HEAD + '[[arm]]\nname = "x"\nzip = "yes"\nepochs = [3, 4]\n', ["arm 'x'.zip", "true or false"],
                 id="zip-not-bool"),
    pytest.param(HEAD + '[arm]\nname = "x"\nepochs = 3\n', ["arm", "[[arm]]"], id="arm-not-array"),
    pytest.param(HEAD + '[[arm]]\nname = "sched"\nschedule = { name = ["step", "multistep"] }\n',
                 ["arm 'sched'.schedule", "milestones", "grid point schedule.name=multistep"],
                 id="cross-field-error-names-grid-point"),
    pytest.param(HEAD.replace("seeds = 1", "seeds = 1\ninclude_baseline = false"),
                 ["study.include_baseline", "no runs"], id="no-runs"),
]


@pytest.mark.parametrize("text,words", BAD)
def test_malformed_study_files_fail_with_arm_and_key_path(tmp_path, text, words):
    with pytest.raises(ConfigError) as e:
        load_study(write(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_bad_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, '[study]\nname = "t"\nseeds = 3 3\n')
    with pytest.raises(ConfigError, match=r"study\.toml: invalid TOML: .*line 3"):
        load_study(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such study file"):
        load_study(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"overrides": ["seed=3"]}, ["--set seed", "--seeds"]),
        ({"overrides": ["best_metric=test_loss"]}, ["--set best_metric", "[study] metric"]),
        ({"overrides": ["optim.lr"]}, ["--set expects key=value"]),
        ({"seeds": 0}, ["--seeds", ">= 1"]),
        ({"epochs": 0}, ["--epochs", ">= 1"]),
        # valid file, invalid only with the override: the error says so and names the arm
        ({"overrides": ["model.hidden=[8]"]}, ["arm 'linear'.model.hidden", "unknown option",
                                              "with command-line overrides --set model.hidden=[8]"]),
        ({"overrides": ["optim.lr=0"]}, ["baseline.optim.lr", "greater than 0", "--set optim.lr=0"]),
    ],
)
def test_bad_command_line_overrides(tmp_path, kw, words):
    arms = '[[arm]]\nname = "linear"\nmodel = { name = "linear" }\n'
    with pytest.raises(ConfigError) as e:
        study(tmp_path, arms, **kw)
    msg = str(e.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_arm_equal_to_the_template_is_fine_without_baseline_arm(tmp_path):
    # With include_baseline = false the [baseline] is only a template; an arm that equals it
    # is how the user names that config.
    head = HEAD.replace("seeds = 1", "seeds = 1\ninclude_baseline = false")
    spec = study(tmp_path, '[[arm]]\nname = "sgd"\n\n[[arm]]\nname = "adam"\noptim = { name = "adam" }\n', head=head)
    assert [r.label for r in spec.runs] == ["sgd", "adam"]


def test_a_figure_title_has_the_name_limit():
    """[[figure]] titles are drawn in the report: 200 characters like a name (a 200,000-character
    title was accepted and took the report 50 s to draw)."""
    figure = '\n[[figure]]\narms = ["single linear layer", "batch size"]\ntitle = "{}"\n'
    assert parse_study(EXAMPLE + figure.format("t" * 200)).figures[0]["title"] == "t" * 200
    with pytest.raises(ConfigError) as e:
        parse_study(EXAMPLE + figure.format("t" * 201))
    assert str(e.value) == "figure[0].title: is 201 characters long; the limit is 200"
