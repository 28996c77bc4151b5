"""Issue 14, item 4: stacked arms. ``base = "bn"`` builds an arm on another one; the report walks
each chain and compares every step with the one before it as well as with the baseline."""

from __future__ import annotations

import pytest

from sweeplab.cli.main import main
from sweeplab.errors import ConfigError
from sweeplab.report import build_report
from sweeplab.store import Store
from sweeplab.study import parse_study

STUDY = """
[study]
name = "pipeline"
seeds = 2

[baseline]
epochs = 1
device = "cpu"
data = { dataset = "digits", train_subset = 200, test_subset = 100 }
model = { name = "mlp", hidden = [16] }
optim = { name = "sgd", lr = 0.01, momentum = 0.9 }
"""

ARMS = """
[[arm]]
name = "bn"
model = { batchnorm = true }

[[arm]]
name = "bn + lr"
base = "bn"
optim = { lr = 0.1 }

[[arm]]
name = "bn + lr + wide"
base = "bn + lr"
model = { hidden = [[32], [64]] }
"""


def test_each_arm_is_its_parent_with_its_own_keys_on_top():
    spec = parse_study(STUDY + ARMS)
    cfg = {r.arm: r.config for r in spec.runs if r.seed == 0}
    assert cfg["bn"].model.options() == {"hidden": [16], "batchnorm": True} and cfg["bn"].optim.lr == 0.01
    assert cfg["bn + lr"].model.options() == {"hidden": [16], "batchnorm": True} and cfg["bn + lr"].optim.lr == 0.1
    wide = [r.config for r in spec.runs if r.arm == "bn + lr + wide" and r.seed == 0]
    assert [c.model.options()["hidden"] for c in wide] == [[32], [64]]
    assert all(c.optim.lr == 0.1 and c.model.options()["batchnorm"] for c in wide)
    assert spec.arm("bn + lr + wide").base == "bn + lr" and spec.to_dict()["arms"][3]["base"] == "bn + lr"
    # base = "baseline" is the same as no base
    same = parse_study(STUDY + ARMS.replace('name = "bn"\n', 'name = "bn"\nbase = "baseline"\n'))
    assert [r.run_id for r in same.runs] == [r.run_id for r in spec.runs]


@pytest.mark.parametrize("arms,expected", [
    ('[[arm]]\nname = "a"\nbase = "nope"\noptim = { lr = 0.1 }\n', "arm 'a'.base: no arm named 'nope' to build on (arms: a)"),
    ('[[arm]]\nname = "a"\nbase = "b"\noptim = { lr = 0.1 }\n\n[[arm]]\nname = "b"\nbase = "a"\noptim = { lr = 0.2 }\n',
     "arms build on each other in a circle: a -> b -> a"),
    ('[[arm]]\nname = "a"\nbase = "a"\noptim = { lr = 0.1 }\n', "in a circle: a -> a"),
    ('[[arm]]\nname = "g"\noptim = { lr = [0.1, 0.2] }\n\n[[arm]]\nname = "c"\nbase = "g"\nepochs = 2\n',
     "arm 'c'.base: arm 'g' is a grid (optim.lr); an arm can build only on an arm with one config"),
    ('[[arm]]\nname = "a"\nbase = 3\noptim = { lr = 0.1 }\n', "arm 'a'.base: must be the name of another arm (got 3)"),
])
def test_bad_bases_are_one_line_errors(arms, expected):
    with pytest.raises(ConfigError) as e:
        parse_study(STUDY + arms)
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("order", ["root first", "root last"])
def test_a_chain_of_bases_longer_than_the_limit_is_one_line(order):
    """1,000 arms each built on the one before: refused by the stacking limit, whatever the order
    of the tables (root last made the resolution recurse 1,000 deep: a RecursionError)."""
    limit = 100  # sweeplab.study.limits.MAX_STACK
    arms = ['[[arm]]\nname = "a0"\noptim = { lr = 0.1 }\n'] + [
        f'[[arm]]\nname = "a{i}"\nbase = "a{i - 1}"\n' for i in range(1, 1000)]
    with pytest.raises(ConfigError) as e:
        parse_study(STUDY + "".join(arms if order == "root first" else reversed(arms)))
    assert f"more than {limit} deep" in str(e.value) and ".base" in str(e.value)
    ok = parse_study(STUDY + "".join(arms[:limit + 1]))  # a0 and 100 stacked on it: at the limit
    assert ok.arm(f"a{limit}").base == f"a{limit - 1}"


def test_bad_base_through_the_cli_is_exit_2(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(STUDY + '[[arm]]\nname = "a"\nbase = "nope"\noptim = { lr = 0.1 }\n')
    assert main(["run", str(study), "--out", str(tmp_path / "out")]) == 2
    assert "no arm named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "sweeplab.db").exists()


def test_report_walks_the_chain_step_by_step(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(STUDY + ARMS)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--workers", "1"]) == 0
    with Store(out / "sweeplab.db", readonly=True) as store:
        report = build_report(store, "pipeline", with_figures=False)
    chains = [f for f in report.findings if f.kind == "stacked"]
    assert len(chains) == 2  # one per grid point of the last step
    for f in chains:
        assert f.subjects[:2] == ("bn", "bn + lr") and f.subjects[2].startswith("bn + lr + wide")
        assert "bn: " in f.text and "first step" in f.text and " vs bn (" in f.text and " vs bn + lr (" in f.text
        assert f.text.count("vs the baseline") == 3
    by_label = {s.label: s for s in report.settings}
    step = by_label["bn + lr"]
    assert step.vs_base.diff == pytest.approx(step.final_test_acc.mean - by_label["bn"].final_test_acc.mean)
