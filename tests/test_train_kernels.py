"""The trainer's CPU fast paths keep the maths: fused optimizers, native kernels for tiny steps,
channels_last batches for larger ones."""

from __future__ import annotations

import pytest
import torch

from sweeplab.config import OptimConfig
from sweeplab.train.device import NATIVE_CONV_FLOPS
from sweeplab.train.epoch import train_epoch
from sweeplab.train.setup import build
from sweeplab.train.optim import build_optimizer
from sweeplab.resolve import build_run_config


def _trajectory(opt_factory, steps: int = 30) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    opt = opt_factory(model.parameters())
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "cfg, reference",
    [
        (dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
         lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3, foreach=False)),
        (dict(name="adam", lr=0.01, weight_decay=1e-3),
         lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3, foreach=False)),
        (dict(name="adamw", lr=0.01, weight_decay=0.1),
         lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, foreach=False)),
        (dict(name="rmsprop", lr=0.01, momentum=0.5),
         lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5, foreach=False)),
        (dict(name="radam", lr=0.01),
         lambda p: torch.optim.RAdam(p, lr=0.01, foreach=False)),
    ],
    ids=lambda v: v["name"] if isinstance(v, dict) else "",
)
def test_fast_optimizers_follow_the_reference_implementation(cfg, reference):
    ours = _trajectory(lambda p: build_optimizer(p, OptimConfig(**cfg)))
    ref = _trajectory(reference)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    probe = build_optimizer([torch.nn.Parameter(torch.zeros(2))], OptimConfig(**cfg))
    expected = {"fused": True} if cfg["name"] in ("sgd", "adam", "adamw") else {"foreach": True}
    assert {k: probe.defaults[k] for k in expected} == expected


def _cnn_setup(batch_size: int):
    cfg = build_run_config({
        "epochs": 1, "batch_size": batch_size, "device": "cpu", "seed": 0,
        "data": {"dataset": "digits", "train_subset": 64, "test_subset": 32},
        "model": {"name": "simple_cnn"}, "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    })
    return build(cfg)


def test_tiny_cpu_steps_train_with_native_kernels_and_restore_onednn():
    small, large = _cnn_setup(2), _cnn_setup(64)
    assert small.flops * 2 < NATIVE_CONV_FLOPS <= large.flops * 64
    assert small.native_conv and not small.channels_last
    assert not large.native_conv and large.channels_last
    conv = [m for m in large.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # 8 -> 16 channels
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    conv = [m for m in small.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert conv.weight.is_contiguous()
    # the training step takes batches as they come: the loaders give them in the model's layout
    for setup, nhwc in ((large, True), (small, False)):
        for loader in (setup.train_loader, *setup.eval_loaders.values()):
            xb = next(iter(loader))[0]
            assert xb.shape[1:] == (1, 8, 8) and (xb.stride(1) == 1) == nhwc  # NHWC: channels innermost

    seen: list[bool] = []
    small.model.register_forward_pre_hook(lambda *_: seen.append(torch.backends.mkldnn.enabled))
    assert torch.backends.mkldnn.enabled
    out = train_epoch(small, 1)
    assert seen and not any(seen)  # every training step ran with oneDNN off...
    assert torch.backends.mkldnn.enabled  # ...and it is back on for evaluation and other runs
    assert out["train_samples"] == 64
