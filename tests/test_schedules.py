"""Schedules: lr at chosen steps equals the closed form, and matches torch's own schedulers."""

from __future__ import annotations

import math

import pytest
import torch

from sweeplab.config import ScheduleConfig
from sweeplab.train import build_schedule

SPE = 10  # steps per epoch


def lr(name: str, step: int, epochs: int = 20, base: float = 0.1, **kw) -> float:
    return build_schedule(ScheduleConfig(name=name, **kw), base, SPE, epochs).lr_at(step)


def test_constant():
    assert lr("constant", 0) == lr("constant", 199) == 0.1


@pytest.mark.parametrize("step,expected", [(0, 0.1), (49, 0.1), (50, 0.05), (99, 0.05), (100, 0.025), (199, 0.1 * 0.5**3)])
def test_step_decays_every_step_size_epochs(step, expected):
    assert lr("step", step, step_size=5, gamma=0.5) == pytest.approx(expected)


@pytest.mark.parametrize("step,expected", [(0, 0.1), (79, 0.1), (80, 0.01), (119, 0.01), (120, 0.001), (199, 0.001)])
def test_multistep_epochs(step, expected):
    assert lr("multistep", step, milestones=[8, 12]) == pytest.approx(expected)


def test_multistep_by_iterations_like_he_et_al():
    # ResNet paper: lr /10 at 32k and 48k iterations, whatever the epoch boundaries.
    s = build_schedule(ScheduleConfig(name="multistep", interval="step", milestones=[32000, 48000]), 0.1, 352, 182)
    assert s.lr_at(31999) == pytest.approx(0.1)
    assert s.lr_at(32000) == pytest.approx(0.01)
    assert s.lr_at(48000) == pytest.approx(0.001)


def test_exponential():
    assert lr("exponential", 35, gamma=0.9) == pytest.approx(0.1 * 0.9**3)


def test_cosine_with_warmup_closed_form():
    warm = 2 * SPE
    total = 20 * SPE
    for step in (0, 5, 19):
        assert lr("cosine", step, warmup_epochs=2) == pytest.approx(0.1 * (step + 1) / warm)
    for step in (20, 50, 110, 199):
        t = (step - warm) / (total - warm)
        assert lr("cosine", step, warmup_epochs=2, min_lr=0.001) == pytest.approx(
            0.001 + (0.1 - 0.001) * 0.5 * (1 + math.cos(math.pi * t))
        )


def test_step_schedules_match_torch():
    """Per-epoch schedules agree with torch.optim.lr_scheduler stepped once per epoch."""
    cases = [
        (dict(name="step", step_size=3, gamma=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (dict(name="multistep", milestones=[4, 7]), lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [4, 7], 0.1)),
        (dict(name="exponential", gamma=0.8), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
    ]
    for kw, make in cases:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        ref = make(opt)
        ours = build_schedule(ScheduleConfig(**kw), 0.1, SPE, 10)
        for epoch in range(10):
            assert ours.lr_at(epoch * SPE + 3) == pytest.approx(opt.param_groups[0]["lr"]), (kw, epoch)
            opt.step()
            ref.step()


def test_onecycle_matches_torch():
    total = 20 * SPE
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.4, total_steps=total, pct_start=0.3, anneal_strategy="cos",
                                              cycle_momentum=False)
    ours = build_schedule(ScheduleConfig(name="onecycle", max_lr=0.4, pct_start=0.3), 0.1, SPE, 20)
    for step in range(total):
        assert ours.lr_at(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9), step
        opt.step()
        ref.step()
