"""Setting a run up: its data on the device, its model (under the run's seed), optimizer,
schedule, loss and loaders, and the CPU kernel and thread choices for its step size."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweeplab.config import RunConfig
from sweeplab.data import Dataset, DeviceLoader, load_dataset, normalization
from sweeplab.models import create_model, summarize

from .device import NATIVE_CONV_FLOPS, cpu_threads, resolve_device
from .losses import LossFn, build_loss
from .optim import build_optimizer
from .schedules import Schedule, build_schedule


@dataclass
class Setup:
    """Everything a run trains with, built from its config."""

    cfg: RunConfig
    device: torch.device
    #: Model weights and every loader's batches are in channels_last memory order.
    channels_last: bool
    #: Train with PyTorch's native convolution kernels instead of oneDNN's (tiny CPU steps).
    native_conv: bool
    dataset: Dataset
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: LossFn
    train_loader: DeviceLoader
    eval_loaders: dict[str, DeviceLoader]
    batch_size: int
    params: int
    flops: float



def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_kwargs(cfg: RunConfig, ds: Dataset) -> dict[str, Any]:
    kwargs = cfg.model.options()
    if ds.kind == "sequence" and "vocab_size" not in kwargs:
        from sweeplab.models import model_options

        if "vocab_size" in model_options(cfg.model.name, cfg.code):
            kwargs["vocab_size"] = ds.vocab_size
    return kwargs


def make_model(cfg: RunConfig, ds: Dataset) -> torch.nn.Module:
    """The run's model, created under the run's seed so initial weights are reproducible."""
    torch.manual_seed(cfg.seed)
    return create_model(
        cfg.model.name,
        input_shape=ds.input_shape,
        num_classes=ds.num_classes,
        init=cfg.model.init,
        init_std=cfg.model.init_std,
        code=cfg.code,
        **model_kwargs(cfg, ds),
    )


def build(cfg: RunConfig, data_dir: str | Path | None = None, dataset: Dataset | None = None) -> Setup:
    """Load data, create model/optimizer/schedule/loss and the device loaders."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    ds = dataset if dataset is not None else load_dataset(cfg.data, data_dir, code=cfg.code)
    seed_everything(cfg.seed)
    model = make_model(cfg, ds)
    summary = summarize(model, ds.input_shape)
    model.to(device)

    batch_size = cfg.batch_size
    if batch_size == "max":
        from .batch_size import find_max_batch_size

        batch_size = find_max_batch_size(cfg, model, ds, device)
    batch_size = min(int(batch_size), len(ds.y_train))
    step_flops = batch_size * summary.flops_per_example
    if cfg.threads is None and device.type == "cpu":
        torch.set_num_threads(cpu_threads(step_flops))
    has_conv = ds.kind == "image" and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    native_conv = has_conv and device.type == "cpu" and step_flops < NATIVE_CONV_FLOPS
    channels_last = cfg.channels_last and has_conv and not native_conv
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    mean, std = normalization(ds, cfg.data)
    norm = {"mean": mean, "std": std}
    train_loader = DeviceLoader(
        ds.x_train, ds.y_train, batch_size=batch_size, shuffle=True, seed=cfg.seed, device=device,
        augment=cfg.data.augment if (cfg.data.augment.any() and ds.kind == "image") else None,
        channels_last=channels_last, **norm,
    )
    eval_loaders = {}
    if ds.x_val is not None:
        eval_loaders["val"] = DeviceLoader(
            ds.x_val, ds.y_val, batch_size=cfg.eval_batch_size, shuffle=False, seed=0, device=device,
            channels_last=channels_last, **norm,
        )
    eval_loaders["test"] = DeviceLoader(
        ds.x_test, ds.y_test, batch_size=cfg.eval_batch_size, shuffle=False, seed=0, device=device,
        channels_last=channels_last, **norm,
    )
    # A model that brings its own optimizer (the NumPy MLP updates its weights in NumPy) says so
    # with build_optimizer(OptimConfig); every other model gets torch's.
    own = getattr(model, "build_optimizer", None)
    optimizer = own(cfg.optim) if callable(own) else build_optimizer(model.parameters(), cfg.optim)
    schedule = build_schedule(cfg.schedule, cfg.optim.lr, len(train_loader), cfg.epochs)
    return Setup(
        cfg=cfg, device=device, channels_last=channels_last, native_conv=native_conv, dataset=ds, model=model,
        optimizer=optimizer, schedule=schedule, loss_fn=build_loss(cfg.loss, ds.num_classes), train_loader=train_loader,
        eval_loaders=eval_loaders,
        batch_size=batch_size, params=summary.total_params, flops=float(summary.flops_per_example),
    )


