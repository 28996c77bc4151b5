"""Tests for ``numpy_mlp``, the NumPy reference MLP: it computes what PyTorch's ``mlp`` computes
(gradients, and the losses of the first 100 SGD steps from the same start on the same batches),
trains through the ordinary trainer into a real store, and resumes from its checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sweeplab.config import OptimConfig, RunConfig
from sweeplab.errors import ConfigError
from sweeplab.models import create_model, summarize
from sweeplab.models.numpy_mlp import ACTIVATIONS, NumpyMLP, NumpySGD
from sweeplab.store import Store
from sweeplab.train.epoch import train_epoch
from sweeplab.train.setup import Setup, build
from sweeplab.resolve import run_id

from helpers import fit_recorded

MOONS = {"dataset": "moons", "noise": 0.08}
DIGITS = {"dataset": "digits"}


@pytest.fixture(autouse=True)
def _one_thread():
    # The comparisons are about arithmetic, not speed; one thread keeps them quick on a busy box.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_config(model: str, data: dict, hidden: list[int], activation: str, **changes) -> RunConfig:
    optim = {"name": "sgd", "lr": 0.5, "momentum": 0.9, **changes.pop("optim", {})}
    init = changes.pop("init", {"init": "normal", "init_std": 0.001})  # the N(0, 0.001), zero biases
    return RunConfig.model_validate({
        "data": data,
        "model": {"name": model, "hidden": hidden, "activation": activation, **init},
        "optim": optim, "batch_size": 32, "seed": 0, "device": "cpu", **changes,
    })


def twin_setups(data: dict, hidden: list[int], activation: str, **changes) -> tuple[Setup, Setup]:
    """The trainer's setups for mlp and numpy_mlp with one config, numpy_mlp given mlp's weights."""
    torch_setup = build(run_config("mlp", data, hidden, activation, **changes))
    numpy_setup = build(run_config("numpy_mlp", data, hidden, activation, **changes))
    assert isinstance(numpy_setup.optimizer, NumpySGD)
    assert isinstance(torch_setup.optimizer, torch.optim.SGD)
    pairs = list(zip(torch_setup.model.parameters(), numpy_setup.model.parameters(), strict=True))
    # Same seed, same RNG draws in the same order: the two already start equal; copy to be exact.
    assert all(torch.equal(t, n) for t, n in pairs)
    with torch.no_grad():
        for t, n in pairs:
            n.copy_(t)
    return torch_setup, numpy_setup


def step_losses(setup: Setup, steps: int = 100) -> np.ndarray:
    """The loss of each of the first ``steps`` SGD steps, with train_epoch's step sequence."""
    model, opt, loader = setup.model, setup.optimizer, setup.train_loader
    model.train()
    losses: list[float] = []
    epoch = 1
    while len(losses) < steps:
        loader.set_epoch(epoch)
        for xb, yb in loader:
            loss = setup.loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if len(losses) == steps:
                break
        epoch += 1
    return np.array(losses)


EQUIVALENCE = [
    *[(MOONS, [20], act, {}) for act in ACTIVATIONS],
    (DIGITS, [32], "relu", {"optim": {"lr": 0.1}}),
    (DIGITS, [32], "tanh", {"optim": {"lr": 0.1, "nesterov": True, "weight_decay": 1e-3}}),
    (DIGITS, [32], "none", {"optim": {"lr": 0.1}}),
    (MOONS, [20], "relu", {"optim": {"nesterov": True, "weight_decay": 1e-3}}),
]


@pytest.mark.parametrize(
    ("data", "hidden", "activation", "changes"), EQUIVALENCE,
    ids=[f"{d['dataset']}-{a}-{'+'.join(c.get('optim', {})) or 'momentum'}" for d, _, a, c in EQUIVALENCE],
)
def test_first_100_losses_equal_pytorch_mlp(data, hidden, activation, changes) -> None:
    torch_setup, numpy_setup = twin_setups(data, hidden, activation, **changes)
    expected = step_losses(torch_setup)
    got = step_losses(numpy_setup)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=0)
    # Not a comparison of two stalled runs: both learned something in those 100 steps.
    assert expected.min() < 0.5 * expected[0]
    for t, n in zip(torch_setup.model.parameters(), numpy_setup.model.parameters()):
        torch.testing.assert_close(n, t, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
@pytest.mark.cifar
def test_first_100_losses_equal_pytorch_mlp_on_cifar10(cifar10_env, monkeypatch) -> None:
    # The toy study's CIFAR-10 arm: 3072-64-64-64-10, plain SGD, PyTorch's default initialisation.
    for key, value in cifar10_env.items():
        monkeypatch.setenv(key, value)
    data = {"dataset": "cifar10", "train_subset": 12800, "test_subset": 100}
    torch_setup, numpy_setup = twin_setups(data, [64, 64, 64], "relu", optim={"lr": 0.01, "momentum": 0.0},
                                           init={"init": "default"})
    expected = step_losses(torch_setup)
    np.testing.assert_allclose(step_losses(numpy_setup), expected, rtol=1e-5, atol=0)
    assert expected[-10:].mean() < expected[:10].mean() - 0.02  # it is learning


def test_two_hidden_layers_track_pytorch_from_the_near_zero_start() -> None:
    # From std 0.001 two hidden layers barely move in 100 steps (the origin is a saddle), but the
    # losses must still agree.
    torch_setup, numpy_setup = twin_setups(MOONS, [20, 20], "relu")
    np.testing.assert_allclose(step_losses(numpy_setup), step_losses(torch_setup), rtol=1e-5, atol=0)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_gradients_equal_autograd(activation: str) -> None:
    torch.manual_seed(0)
    reference = create_model("mlp", input_shape=(1, 8, 8), num_classes=5, hidden=[16, 12], activation=activation)
    torch.manual_seed(0)
    model = create_model("numpy_mlp", input_shape=(1, 8, 8), num_classes=5, hidden=[16, 12], activation=activation)
    x = torch.randn(7, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    for net, inp in zip((reference, model), xs):
        # Twice: gradients accumulate in .grad as for any torch model.
        for _ in range(2):
            F.cross_entropy(net(inp), y).backward()
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)
    for t, n in zip(reference.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(n.grad, t.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-4, atol=1e-6)


def test_trainer_epochs_with_schedule_and_clipping_match_pytorch() -> None:
    # train_epoch sets the lr in param_groups when the schedule changes it and clips .grad in place;
    # NumpySGD reads both.
    changes = {"optim": {"lr": 0.1}, "schedule": {"name": "step", "step_size": 1, "gamma": 0.5},
               "grad_clip": 0.5, "epochs": 3}
    torch_setup, numpy_setup = twin_setups(DIGITS, [32], "relu", **changes)
    for epoch in (1, 2, 3):
        expected = train_epoch(torch_setup, epoch)
        got = train_epoch(numpy_setup, epoch)
        assert got["lr"] == expected["lr"] == 0.1 * 0.5 ** (epoch - 1)
        assert numpy_setup.optimizer.param_groups[0]["lr"] == expected["lr"]
        assert got["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-5)


def test_weights_are_numpy_arrays_shared_with_the_parameters() -> None:
    model = create_model("numpy_mlp", input_shape=(2,), num_classes=3, hidden=[4])
    assert [name for name, _ in model.named_parameters()] == ["weight1", "bias1", "weight2", "bias2"]
    (w1, b1), (w2, b2) = model.arrays()
    assert w1.shape == (4, 2) and b2.shape == (3,) and w1.dtype == np.float32
    w1[0, 0] = 42.0
    assert model.weight1[0, 0].item() == 42.0
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert not model.arrays()[0][0].any()  # load_state_dict copies into the same memory
    assert "2-4-3" in repr(model) and "NumPy" in repr(model)


def test_flops_and_parameters_are_those_of_mlp() -> None:
    options = {"hidden": [110, 74], "activation": "relu"}
    ours = summarize(create_model("numpy_mlp", input_shape=(3, 32, 32), num_classes=10, **options), (3, 32, 32))
    theirs = summarize(create_model("mlp", input_shape=(3, 32, 32), num_classes=10, **options), (3, 32, 32))
    assert ours.total_params == theirs.total_params == 346_994
    assert ours.flops_per_example == theirs.flops_per_example > 0


def test_optimizer_honours_zero_grad_and_momentum_state() -> None:
    torch.manual_seed(0)
    model = create_model("numpy_mlp", input_shape=(3,), num_classes=2, hidden=[4])
    opt = model.build_optimizer(OptimConfig(name="sgd", lr=0.1, momentum=0.9))
    F.cross_entropy(model(torch.randn(5, 3)), torch.tensor([0, 1, 0, 1, 1])).backward()
    opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())
    opt.step()  # no gradients: nothing moves, as with torch.optim.SGD
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    state = opt.state_dict()
    assert len(state["state"]) == 4 and all("momentum_buffer" in s for s in state["state"].values())


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_other_optimizers_are_config_errors(name: str) -> None:
    model = create_model("numpy_mlp", input_shape=(3,), num_classes=2)
    with pytest.raises(ConfigError) as excinfo:
        model.build_optimizer(OptimConfig(name=name))
    assert excinfo.value.path == "optim.name" and "sgd" in str(excinfo.value)


def test_options_are_checked_like_mlp() -> None:
    with pytest.raises(ConfigError, match=r"model\.activation: .*'sigmoidd'"):
        create_model("numpy_mlp", input_shape=(3,), num_classes=2, activation="sigmoidd")
    with pytest.raises(ConfigError, match=r"model\.batchnorm: "):
        create_model("numpy_mlp", input_shape=(3,), num_classes=2, batchnorm=True)
    assert isinstance(create_model("numpy_mlp", input_shape=(3,), num_classes=2, hidden=[]), NumpyMLP)


def moons_fit_config(epochs: int) -> RunConfig:
    return RunConfig.model_validate({
        "data": {**MOONS, "n_samples": 1000}, "model": {"name": "numpy_mlp", "hidden": [20]},
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "batch_size": 32, "epochs": epochs,
        "seed": 3, "device": "cpu",
    })


def test_fit_into_a_store_and_resume(tmp_path) -> None:
    cfg = moons_fit_config(epochs=8)
    with Store(tmp_path / "straight" / "sweeplab.db") as store:
        straight = fit_recorded(cfg, store)
        assert straight.status == "completed", straight.detail
        rows = store.epochs(straight.run_id)
        run = store.get_run(straight.run_id)
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert rows[-1]["test_acc"] > 0.9  # chance is 0.5
    assert run["params"] == 2 * 20 + 20 + 20 * 2 + 2 and run["flops"] > 0

    def stop_after_three(event: str, info: dict) -> None:
        if event == "epoch" and info["epoch"] == 3:
            raise KeyboardInterrupt

    with Store(tmp_path / "resumed" / "sweeplab.db") as store:
        with pytest.raises(KeyboardInterrupt):
            fit_recorded(cfg, store, progress=stop_after_three)
        assert store.get_run(run_id(cfg))["status"] == "interrupted"
        assert store.last_epoch(run_id(cfg)) == 3
        resumed = fit_recorded(cfg, store)
        assert resumed.status == "completed" and resumed.resumed_from == 3
        resumed_rows = store.epochs(run_id(cfg))
    # Weights and the momentum buffers come back from the checkpoint: the same curves, exactly.
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")
    assert [[r[k] for k in keys] for r in resumed_rows] == [[r[k] for k in keys] for r in rows]
    assert math.isfinite(resumed_rows[-1]["train_loss"])


def test_fit_with_another_optimizer_fails_naming_the_key(tmp_path) -> None:
    cfg = moons_fit_config(epochs=1).model_copy(update={"optim": OptimConfig(name="adam")})
    with Store(tmp_path / "sweeplab.db") as store, pytest.raises(ConfigError, match="optim.name"):
        fit_recorded(cfg, store)
