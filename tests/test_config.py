"""Run config: TOML loading, --set overrides as TOML literals, validation with full key paths, identity."""

from __future__ import annotations

import pytest

from sweeplab.config import RunConfig, parse_set
from sweeplab.errors import ConfigError
from sweeplab.resolve import build_run_config, load_run_config, run_id


def test_set_values_are_toml_literals():
    o = parse_set(["model.hidden=[110,74]", "optim.lr=1e-3", "model.name=mlp", "data.augment.hflip=true"])
    assert o == {"model": {"hidden": [110, 74], "name": "mlp"}, "optim": {"lr": 1e-3}, "data": {"augment": {"hflip": True}}}


def test_file_then_flags_then_set(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('epochs = 3\nbatch_size = 32\n[optim]\nname = "adam"\nlr = 0.5\n[model]\nname = "mlp"\nhidden = [8]\n')
    cfg = load_run_config(f, ["optim.lr=1e-3"], {"epochs": 5})
    assert (cfg.epochs, cfg.batch_size, cfg.optim.name, cfg.optim.lr) == (5, 32, "adam", 1e-3)
    assert cfg.model.options() == {"hidden": [8]}


def test_changing_model_drops_other_models_options():
    cfg = load_run_config(None, ["model.name=linear"], {"model": {"name": "mlp", "hidden": [8]}})
    assert cfg.model.name == "linear" and cfg.model.options() == {}


def test_config_is_frozen():
    cfg = RunConfig()
    with pytest.raises(Exception):
        cfg.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "data,path,words",
    [
        ({"optim": {"lr": -1}}, "optim.lr", "greater than 0"),
        ({"optim": {"lr": 0}}, "optim.lr", "greater than 0"),
        ({"batch_size": 0}, "batch_size", "integer >= 1 or \"max\""),
        ({"optim": {"lrr": 0.1}}, "optim.lrr", "unknown key"),
        ({"epochs": "ten"}, "epochs", "integer"),
        ({"optim": {"name": "adagrad"}}, "optim.name", "sgd"),
        ({"schedule": {"name": "multistep"}}, "schedule", "milestones"),
        ({"model": {"name": "nosuchnet"}}, "model.name", "available"),
        ({"model": {"name": "mlp", "hiddn": [3]}}, "model.hiddn", "allowed"),
        ({"data": {"augment": {"cutout": -2}}}, "data.augment.cutout", "greater than or equal to 0"),
        ({"device": "tpu"}, "device", "auto, cpu"),
        ({"unknown_top": 1}, "unknown_top", "unknown key"),
    ],
)
def test_bad_values_name_the_full_path(data, path, words):
    with pytest.raises(ConfigError) as e:
        build_run_config(data)
    msg = str(e.value)
    assert msg.startswith(path + ":") or f"{path}:" in msg, msg
    assert words in msg, msg


def test_identity_ignores_key_order_defaults_and_threads():
    a = build_run_config({"optim": {"lr": 0.1, "name": "sgd"}, "epochs": 3, "threads": 1})
    b = build_run_config({"epochs": 3, "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0}, "threads": 2})
    c = build_run_config({"epochs": 3, "optim": {"name": "sgd", "lr": 0.1}, "seed": 1})
    assert run_id(a) == run_id(b) != run_id(c)
    assert len(run_id(a)) == 12


def test_identity_writes_model_defaults_out():
    a = build_run_config({"model": {"name": "lstm"}})
    b = build_run_config({"model": {"name": "lstm", "hidden": 128}})
    c = build_run_config({"model": {"name": "lstm", "hidden": 64}})
    assert run_id(a) == run_id(b) != run_id(c)
