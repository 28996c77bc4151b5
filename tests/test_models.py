"""Tests for sweeplab.models: every registered model builds, trains a step on every input shape it
accepts, has its published parameter count, honours the init schemes, and rejects bad options with
a ConfigError naming the option."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sweeplab.errors import ConfigError
from sweeplab.models import create_model, list_models, model_options, summarize
from sweeplab.models.blocknet import MixtureBlock
from sweeplab.models.mlp import MLP
from sweeplab.models.registry import MODELS, register

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)
DIGITS = (1, 8, 8)
FEATURES = (64,)
TOKENS = (12,)

# Parameter counts for CIFAR-10 (3x32x32 inputs, 10 classes); sequence models with default options.
EXPECTED_PARAMS = {
    "linear": 30_730,  # 3072*10 + 10
    "mlp": 346_994,  # (3072*110 + 110) + (110*74 + 74) + (74*10 + 10)
    "numpy_mlp": 346_994,  # the same layers as mlp, in NumPy
    "tutorial_cnn": 62_006,  # PyTorch tutorial
    "simple_cnn": 82_030,  # 608 + 1,168 + (576*120 + 120) + 10,164 + 850
    "vgg": 9_231_114,  # VGG-11 with BN, as in kuangliu/pytorch-cifar
    "resnet20": 269_722,  # He et al. 2016: 0.27M
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    # Per block 6 convs (c_in*c*9 + c) + gate (c_in*6 + 6) + BN (2c), for 3->64->128->256->512,
    # plus head 512-256-128-64-10.
    "blocknet": 9_483_636,
    "rnn": 22_346,  # embedding 10*32 + RNN (32*128 + 128*128 + 2*128) + fc 128*10 + 10
    "lstm": 84_554,  # embedding 320 + LSTM 4*(32*128 + 128*128 + 2*128) + fc 1,290
}


def input_shapes(name: str) -> list[tuple[int, ...]]:
    """Every input shape the model is expected to take."""
    kind = MODELS[name].inputs
    if kind == "tokens":
        # Length 2, not 1: with one step the initial state is zero and weight_hh gets no gradient.
        return [TOKENS, (2,)]
    return [CIFAR, MNIST, DIGITS] + ([FEATURES] if kind == "any" else [])


def example_batch(name: str, shape: tuple[int, ...], batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if MODELS[name].inputs == "tokens":
        vocab = model_options(name)["vocab_size"]
        return torch.randint(0, vocab, (batch, *shape), generator=generator)
    return torch.randn((batch, *shape), generator=generator)


def default_shape(name: str) -> tuple[int, ...]:
    return TOKENS if MODELS[name].inputs == "tokens" else CIFAR


CASES = [(name, shape) for name in list_models() for shape in input_shapes(name)]


@pytest.mark.parametrize(("name", "shape"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_forward_backward(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = create_model(name, input_shape=shape, num_classes=7)
    x = example_batch(name, shape)

    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()

    F.cross_entropy(out, torch.tensor([0, 6])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, f"{param_name} got an all-zero gradient"


def test_every_model_has_an_expected_count() -> None:
    assert set(EXPECTED_PARAMS) == set(list_models())


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS))
def test_parameter_counts_and_summary(name: str) -> None:
    # Passing the defaults explicitly also checks that model_options round-trips into create_model.
    shape = default_shape(name)
    model = create_model(name, input_shape=shape, num_classes=10, **model_options(name))
    total = sum(p.numel() for p in model.parameters())
    assert total == EXPECTED_PARAMS[name]

    summary = summarize(model, shape)
    assert summary.total_params == summary.trainable_params == total
    # Every parameter sits in a leaf module, so the rows account for all of them.
    assert sum(row[3] for row in summary.rows) == total
    assert summary.flops_per_example > 0


def test_resnet_depths_and_shortcuts() -> None:
    for depth in (20, 32, 44, 56, 110):
        model = create_model(f"resnet{depth}", input_shape=CIFAR, num_classes=10)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == depth - 1  # plus the final Linear = depth weight layers
        assert all(conv.bias is None for conv in convs)


def test_small_cnns_are_canonical_on_cifar_and_padded_on_digits() -> None:
    def convs(shape: tuple[int, ...]) -> list[nn.Conv2d]:
        model = create_model("tutorial_cnn", input_shape=shape, num_classes=10)
        return [m for m in model.modules() if isinstance(m, nn.Conv2d)]

    assert [c.padding for c in convs(CIFAR)] == [(0, 0), (0, 0)]
    assert [c.padding for c in convs(MNIST)] == [(0, 0), (0, 0)]
    assert [c.padding for c in convs(DIGITS)] == [(2, 2), (2, 2)]
    # MNIST: 28 -> 24 -> 12 -> 8 -> 4, so the head starts from 16*4*4.
    mnist = create_model("tutorial_cnn", input_shape=MNIST, num_classes=10)
    assert mnist.classifier[1].in_features == 16 * 4 * 4


def test_vgg_depths() -> None:
    expected = {11: 9_231_114, 13: 9_416_010, 16: 14_728_266, 19: 20_040_522}
    for depth, params in expected.items():
        model = create_model("vgg", input_shape=CIFAR, num_classes=10, depth=depth)
        assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == depth - 3
        assert sum(p.numel() for p in model.parameters()) == params
    plain = create_model("vgg", input_shape=CIFAR, num_classes=10, batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    # 8x8 digits: 8 -> 4 -> 2 -> 1, then the last two pools are skipped.
    digits = create_model("vgg", input_shape=DIGITS, num_classes=10)
    assert sum(isinstance(m, nn.MaxPool2d) for m in digits.modules()) == 3


def test_mlp_options_shape_the_network() -> None:
    model = create_model(
        "mlp", input_shape=FEATURES, num_classes=3, hidden=[5], batchnorm=True, dropout=0.5,
        activation="tanh",
    )  # fmt: skip
    types = [type(m) for m in model.layers]
    assert types == [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout, nn.Linear]
    deep_linear = create_model("mlp", input_shape=FEATURES, num_classes=3, activation="none")
    assert not any(isinstance(m, nn.ReLU) for m in deep_linear.modules())


def test_mixture_block_combines_branches_with_softmax_weights() -> None:
    torch.manual_seed(0)
    block = MixtureBlock(in_channels=3, out_channels=4, branches=3).eval()
    x = torch.randn(2, 3, 5, 5)
    weights = torch.softmax(block.gate(x.mean(dim=(2, 3))), dim=1)
    mixed = sum(weights[:, k, None, None, None] * block.branches[k](x) for k in range(3))
    torch.testing.assert_close(block(x), block.relu(block.bn(mixed)))


def test_blocknet_options() -> None:
    model = create_model(
        "blocknet", input_shape=DIGITS, num_classes=10, num_blocks=2, branches=2,
        channels=[4, 8], downsample=False, dropout=0.0,
    )  # fmt: skip
    assert not any(isinstance(m, nn.MaxPool2d | nn.Dropout) for m in model.modules())
    assert [len(b.branches) for b in model.modules() if isinstance(b, MixtureBlock)] == [2, 2]


@pytest.mark.parametrize("name", ["rnn", "lstm"])
@pytest.mark.parametrize("embedding", [None, 0])
def test_recurrent_one_hot(name: str, embedding: int | None) -> None:
    model = create_model(
        name, input_shape=TOKENS, num_classes=4, vocab_size=6, embedding=embedding, layers=2
    )
    assert not any(isinstance(m, nn.Embedding) for m in model.modules())
    assert model.rnn.input_size == 6 and model.rnn.num_layers == 2
    out = model(torch.randint(0, 6, (3, *TOKENS)))
    assert out.shape == (3, 4) and torch.isfinite(out).all()


# --- initialisation ---------------------------------------------------------------------------

NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)


def expected_std(weight: torch.Tensor, init: str, init_std: float) -> float:
    receptive = math.prod(weight.shape[2:])
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    return {
        "normal": init_std,
        "xavier_normal": math.sqrt(2 / (fan_in + fan_out)),
        "kaiming_normal": math.sqrt(2 / fan_out),
    }[init]


@pytest.mark.parametrize("init", ["normal", "xavier_normal", "kaiming_normal"])
@pytest.mark.parametrize("name", list(list_models()))
def test_init_schemes(name: str, init: str) -> None:
    torch.manual_seed(0)
    options = {"batchnorm": True} if "batchnorm" in model_options(name) else {}
    model = create_model(
        name, input_shape=default_shape(name), num_classes=10, init=init, init_std=0.05, **options
    )

    checked = 0
    for module in model.modules():
        for param_name, param in module.named_parameters(recurse=False):
            if isinstance(module, NORM_LAYERS):
                fill = 1.0 if param_name == "weight" else 0.0
                assert torch.equal(param, torch.full_like(param, fill)), param_name
            elif param.dim() == 1:
                assert torch.equal(param, torch.zeros_like(param)), f"{param_name} not zeroed"
            elif param.numel() >= 4096:  # large enough for the sample std to be within a few %
                std = expected_std(param, init, 0.05)
                assert param.std().item() == pytest.approx(std, rel=0.1), param_name
                assert abs(param.mean().item()) < 0.1 * std, param_name
                checked += 1
    assert checked > 0


def test_default_init_is_pytorchs() -> None:
    torch.manual_seed(0)
    created = create_model("mlp", input_shape=FEATURES, num_classes=3)
    torch.manual_seed(0)
    reference = MLP(FEATURES, 3)
    for a, b in zip(created.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
    # PyTorch's default gives Linear biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not zeros.
    assert created.layers[1].bias.abs().sum() > 0


# --- options and registry -----------------------------------------------------------------------

BAD_OPTIONS = [
    ("mlp", {"activation": "sigmoidd"}, "activation", "'sigmoidd'"),
    ("mlp", {"hidden": [0]}, "hidden", "[0]"),
    ("mlp", {"hidden": "abc"}, "hidden", "'abc'"),
    ("mlp", {"hidden": [64, True]}, "hidden", "[64, True]"),
    ("mlp", {"dropout": 1.5}, "dropout", "1.5"),
    ("mlp", {"batchnorm": "yes"}, "batchnorm", "'yes'"),
    ("mlp", {"init": "uniform"}, "init", "'uniform'"),
    ("mlp", {"init_std": 0}, "init_std", "0"),
    ("mlp", {"foo": 1}, "foo", "hidden, activation, batchnorm, dropout, init, init_std"),
    ("resnet20", {"depth": 32}, "depth", "'depth'"),
    ("tutorial_cnn", {"activation": "sigmoid"}, "activation", "'sigmoid'"),
    ("vgg", {"depth": 12}, "depth", "12"),
    ("vgg", {"depth": 11.0}, "depth", "11.0"),
    ("blocknet", {"channels": [8, 16]}, "channels", "[8, 16]"),
    ("blocknet", {"branches": 0}, "branches", "0"),
    ("rnn", {"embedding": -1}, "embedding", "-1"),
    ("lstm", {"hidden": 0}, "hidden", "0"),
]


@pytest.mark.parametrize(("name", "options", "option", "shown"), BAD_OPTIONS)
def test_bad_options_raise_config_error(
    name: str, options: dict[str, object], option: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        create_model(name, input_shape=default_shape(name), num_classes=10, **options)
    message = str(excinfo.value)
    assert excinfo.value.path == f"model.{option}"
    assert message.startswith(f"model.{option}: ")
    assert shown in message
    assert "allowed" in message


def test_unknown_model_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as excinfo:
        create_model("foo", input_shape=CIFAR, num_classes=10)
    assert excinfo.value.path == "model.name"
    assert "'foo'" in str(excinfo.value) and "resnet20" in str(excinfo.value)
    with pytest.raises(ConfigError, match="model.name"):
        model_options("foo")


@pytest.mark.parametrize(("name", "shape"), [("rnn", CIFAR), ("tutorial_cnn", FEATURES)])
def test_model_that_does_not_fit_the_data(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match=r"model\.name: .*input shape"):
        create_model(name, input_shape=shape, num_classes=10)


def test_duplicate_registration_raises() -> None:
    before = dict(MODELS)
    with pytest.raises(ValueError, match="already registered"):
        register("mlp", MLP, "any", "a second mlp")
    assert MODELS == before


def test_list_models_and_options() -> None:
    models = list_models()
    assert {"linear", "mlp", "vgg", "resnet110", "blocknet", "rnn", "lstm"} <= set(models)
    assert all(text and "\n" not in text for text in models.values())
    assert model_options("mlp") == {
        "hidden": [110, 74],
        "activation": "relu",
        "batchnorm": False,
        "dropout": 0.0,
    }
    assert model_options("resnet20") == {}
    # Callers may edit what they get without changing the defaults.
    model_options("blocknet")["channels"].append(1024)
    assert model_options("blocknet")["channels"] == [64, 128, 256, 512]


# --- summary ------------------------------------------------------------------------------------


def test_summary_flops_of_tutorial_cnn() -> None:
    model = create_model("tutorial_cnn", input_shape=CIFAR, num_classes=10)
    summary = summarize(model, CIFAR)
    # A multiply-add is 2 FLOPs; each conv output element needs in_channels * 5 * 5 of them.
    side1 = 32 - 5 + 1  # 28
    side2 = side1 // 2 - 5 + 1  # 10
    conv1 = 2 * (6 * side1 * side1) * (3 * 5 * 5)
    conv2 = 2 * (16 * side2 * side2) * (6 * 5 * 5)
    flat = 16 * (side2 // 2) ** 2  # 400
    fcs = 2 * (flat * 120 + 120 * 84 + 84 * 10)
    assert summary.flops_per_example == conv1 + conv2 + fcs

    rows = {name: (kind, shape) for name, kind, shape, _ in summary.rows}
    assert rows["features.0"] == ("Conv2d", (6, 28, 28))
    assert rows["classifier.0"] == ("Flatten", (400,))
    assert "62,006" in str(summary)


def test_summary_counts_recurrent_flops() -> None:
    # Fused CPU/cuDNN LSTM kernels are invisible to the FLOP counter; summarize must still count.
    model = create_model("lstm", input_shape=TOKENS, num_classes=10, embedding=8, hidden=16)
    per_step = 2 * 4 * 16 * (8 + 16)  # four gates, each a matvec over [x_t, h_{t-1}]
    assert summarize(model, TOKENS).flops_per_example == TOKENS[0] * per_step + 2 * 16 * 10


def test_summary_has_no_side_effects() -> None:
    model = create_model("mlp", input_shape=FEATURES, num_classes=3, batchnorm=True)
    model.train()
    rng = torch.get_rng_state()
    summary = summarize(model, FEATURES)
    assert summary.flops_per_example == 2 * (64 * 110 + 110 * 74 + 74 * 3)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model.layers[2].running_mean, torch.zeros(110))  # BN stats untouched
    assert torch.equal(torch.get_rng_state(), rng)


# -- issue 15: FLOPs without FlopCounterMode's start-up, the same numbers -----------------------------

#: Models whose forward the fast counter must handle itself (convolutions, linear layers, matmuls).
FAST_COUNTED = {"linear", "mlp", "tutorial_cnn", "simple_cnn", "vgg", "resnet20", "resnet32", "resnet44",
                "resnet56", "resnet110"}


def _both_counts(model, x):
    from torch.utils.flop_counter import FlopCounterMode

    from sweeplab.models.flops import count_flops
    from sweeplab.models.summary import _native_kernels

    model.eval()
    with torch.no_grad(), _native_kernels():
        fast = count_flops(model, x)
        with FlopCounterMode(display=False) as counter:
            model(x)
    return fast, counter.get_total_flops()


@pytest.mark.parametrize("name,options,shape", [
    *[(n, {}, {"image": (3, 32, 32), "any": (64,), "tokens": (10,)}[MODELS[n].inputs]) for n in MODELS],
    ("mlp", {"hidden": [32, 16], "batchnorm": True}, (1, 28, 28)),
    ("tutorial_cnn", {"batchnorm": True}, (1, 28, 28)),
    ("vgg", {"batchnorm": True}, (3, 32, 32)),
])
def test_fast_flop_count_is_flop_counter_modes_or_defers_to_it(name, options, shape):
    model = create_model(name, input_shape=shape, num_classes=10, **options)
    x = torch.zeros((2, *shape), dtype=getattr(model, "input_dtype", torch.float32))
    fast, reference = _both_counts(model, x)
    assert reference > 0
    assert fast == reference if name in FAST_COUNTED else fast in (None, reference)


def test_fast_flop_count_of_a_students_own_network():
    import importlib.util

    from helpers import ROOT

    spec = importlib.util.spec_from_file_location("coolnet_nets", ROOT / "examples" / "coolnet" / "nets.py")
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    for model in (nets.CoolNet((3, 32, 32), 10), nets.BoringNet((3, 32, 32), 10), nets.LazyNet(10)):
        x = torch.zeros(2, 3, 32, 32)
        model.eval()(x)  # size the lazy layer
        fast, reference = _both_counts(model, x)
        assert fast == reference > 0, type(model).__name__


def test_small_cnn_batchnorm_after_the_convolutions_only():
    from torch import nn

    kinds = {}
    for bn in (False, True, "conv"):
        m = create_model("simple_cnn", input_shape=CIFAR, num_classes=10, batchnorm=bn)
        kinds[bn] = [type(x) for x in m.modules() if isinstance(x, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert kinds[False] == [] and kinds["conv"] == [nn.BatchNorm2d, nn.BatchNorm2d]
    assert kinds[True] == [nn.BatchNorm2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.BatchNorm1d]
    with pytest.raises(ConfigError, match='model.batchnorm.*true, false or "conv"'):
        create_model("simple_cnn", input_shape=CIFAR, num_classes=10, batchnorm="linear")
