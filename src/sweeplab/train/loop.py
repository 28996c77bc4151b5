"""The training loop: ``build`` -> ``fit`` -> ``train_epoch`` / ``evaluate``.

One run, start to finish: load the data onto the device, create the model, then for every epoch
train, evaluate on val/test and commit the epoch's row together with a checkpoint to the store.
A run found half-done in the store continues from its last committed epoch and, on the CPU, gives
the same curves as an uninterrupted one (model, optimizer and RNG states are restored; the loader
and the schedule are pure functions of seed, epoch and step).

Outcomes are results, not crashes: a non-finite loss ends the run as ``diverged``, running out of
memory as ``oom``, any other exception as ``failed``; Ctrl-C marks it ``interrupted`` and re-raises.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sweeplab.config import RunConfig
from sweeplab.data import Dataset, DeviceLoader, load_dataset, normalization
from sweeplab.errors import SweeplabError
from sweeplab.models import create_model, summarize
from sweeplab.store import Store, default_worker_id
from sweeplab.store.claims import claim

from .device import environment, peak_memory_mb, reset_peak_memory, resolve_device
from .losses import LossFn, build_loss
from .optim import build_optimizer
from .schedules import Schedule, build_schedule

Progress = Callable[[str, dict[str, Any]], None]
"""``progress(event, info)``: events ``start``, ``batch`` (step, steps), ``epoch`` (the row), ``end``."""

#: Store statuses after which a run is never trained again.
FINAL_STATUSES = ("completed", "diverged")


class Diverged(Exception):
    """The training loss became non-finite."""

    def __init__(self, epoch: int, step: int, value: float):
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(f"non-finite training loss ({value}) at epoch {epoch}, step {step}")


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


@dataclass
class RunResult:
    """What ``fit`` reports back: the run id, its outcome and its epoch rows."""

    run_id: str
    status: str
    detail: str | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0
    skipped: bool = False


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


#: Below this much work per training step (batch x FLOPs per example) a CPU run uses one thread.
#: Measured with benchmarks/cifar_throughput.py on 2 cores: tutorial_cnn at batch 4 (5 MFLOP per
#: step) runs as fast on one thread as on two when the machine is quiet, and several times faster
#: when the other core is busy (another worker, the OS); at batch 64 (85 MFLOP) two threads win.
SINGLE_THREAD_FLOPS = 32e6

#: Below this many forward FLOPs per training step a CPU run trains with PyTorch's native (NCHW)
#: convolution kernels instead of oneDNN's, whose per-call set-up dominates such tiny steps.
#: Measured (1 s of steps each, median of 3, fused SGD): tutorial_cnn at batch 1 (1.3 MFLOP)
#: 1.4x faster, at batch 4 (5 MFLOP) 1.13-1.28x on one thread; simple_cnn at batch 4 1.05x; at
#: batch 8 (10 MFLOP) native is 0.8x and at batch 32 0.4-0.5x, resnet20 at batch 1 (82 MFLOP) a tie.
NATIVE_CONV_FLOPS = 6e6


def cpu_threads(flops_per_step: float) -> int:
    """Threads for a CPU run whose config leaves ``threads`` unset: one for small steps, else
    the process's budget (``SWEEPLAB_THREADS``, set by executors that split the cores between
    workers; otherwise torch's default for this machine)."""
    if flops_per_step < SINGLE_THREAD_FLOPS:
        return 1
    budget = os.environ.get("SWEEPLAB_THREADS")
    return int(budget) if budget and budget.isdigit() and int(budget) > 0 else _TORCH_DEFAULT_THREADS


_TORCH_DEFAULT_THREADS = torch.get_num_threads()


def _autocast(setup: Setup):
    if setup.cfg.precision == "bf16" and setup.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(setup.device.type, enabled=False)


def train_epoch(setup: Setup, epoch: int, progress: Progress | None = None) -> dict[str, float]:
    """One pass over the training set; returns train loss/accuracy and the lr used.

    Loss and accuracy are means over the samples this epoch trained on. On the CPU every step's
    loss is checked (a float read costs nothing there); on an accelerator only every 25 steps and
    at the end, to avoid a device sync per step.
    """
    if not setup.native_conv:
        return _train_epoch(setup, epoch, progress)
    # A process-wide switch: set for this epoch only, so evaluation (large batches) keeps oneDNN.
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        return _train_epoch(setup, epoch, progress)
    finally:
        torch.backends.mkldnn.enabled = before


def _train_epoch(setup: Setup, epoch: int, progress: Progress | None) -> dict[str, float]:
    model, opt, loader, sched = setup.model, setup.optimizer, setup.train_loader, setup.schedule
    model.train()
    loader.set_epoch(epoch)
    steps = len(loader)
    step0 = (epoch - 1) * steps
    on_cpu = setup.device.type == "cpu"
    clip = setup.cfg.grad_clip
    loss_sum = torch.zeros((), dtype=torch.float64, device=setup.device)
    correct = torch.zeros((), dtype=torch.int64, device=setup.device)
    seen = 0
    lr_sum = 0.0
    current_lr = None
    lr_first = sched.lr_at(step0)
    report_every = max(1, steps // 50)
    for i, (xb, yb) in enumerate(loader):
        step = step0 + i
        lr = sched.lr_at(step)
        if lr != current_lr:  # setting the lr only on change keeps small-batch steps cheap
            for group in opt.param_groups:
                group["lr"] = lr
            current_lr = lr
        lr_sum += lr
        with _autocast(setup):  # batches come in the model's memory format (channels_last or not)
            logits = model(xb)
            loss = setup.loss_fn(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        n = yb.shape[0]
        seen += n
        if on_cpu:
            value = loss.item()
            if not math.isfinite(value):
                raise Diverged(epoch, i + 1, value)
            loss_sum += value * n
        else:
            loss_sum += loss.detach().double() * n
            if (i + 1) % 25 == 0 and not torch.isfinite(loss_sum).item():
                raise Diverged(epoch, i + 1, float(loss.item()))
        correct += (logits.detach().argmax(1) == yb).sum()
        if progress is not None and ((i + 1) % report_every == 0 or i + 1 == steps):
            progress("batch", {"epoch": epoch, "step": i + 1, "steps": steps})
    total = loss_sum.item()
    if not math.isfinite(total):
        raise Diverged(epoch, steps, total)
    return {
        "train_loss": total / seen,
        "train_acc": correct.item() / seen,
        "lr": lr_first,
        "lr_mean": lr_sum / max(1, steps),
        "train_samples": seen,
    }


@torch.no_grad()
def evaluate(setup: Setup, loader: DeviceLoader) -> dict[str, Any]:
    """Loss, accuracy, per-class accuracy and confusion matrix in eval mode, no gradients."""
    model = setup.model
    model.eval()
    k = setup.dataset.num_classes
    confusion = torch.zeros(k * k, dtype=torch.int64, device=setup.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=setup.device)
    n = 0
    loader.set_epoch(0)
    for xb, yb in loader:
        with _autocast(setup):
            logits = model(xb)
            loss = setup.loss_fn(logits.float(), yb)
        loss_sum += loss.double() * yb.shape[0]
        n += yb.shape[0]
        confusion += torch.bincount(yb * k + logits.argmax(1), minlength=k * k)
    cm = confusion.view(k, k).cpu()
    per_class_total = cm.sum(1).clamp(min=1)
    return {
        "loss": loss_sum.item() / max(1, n),
        "acc": cm.diag().sum().item() / max(1, n),
        "per_class_acc": (cm.diag() / per_class_total).tolist(),
        "confusion": cm.tolist(),
    }


def epoch_row(setup: Setup, epoch: int, train: dict[str, float], train_time: float) -> dict[str, Any]:
    """Evaluate and assemble the epoch's metrics, as stored (``epoch_time_s`` is added by the caller)."""
    row: dict[str, Any] = {
        "train_loss": train["train_loss"],
        "train_acc": train["train_acc"],
        "lr": train["lr"],
        "lr_mean": train["lr_mean"],
    }
    for split, loader in setup.eval_loaders.items():
        ev = evaluate(setup, loader)
        row[f"{split}_loss"], row[f"{split}_acc"] = ev["loss"], ev["acc"]
        if split == "test":
            row["test_per_class_acc"] = ev["per_class_acc"]
            if setup.dataset.num_classes <= 20 or epoch == setup.cfg.epochs:
                row["test_confusion"] = ev["confusion"]
    row["train_images_per_s"] = train["train_samples"] / max(train_time, 1e-9)
    row["peak_mem_mb"] = peak_memory_mb(setup.device)
    return row


def _is_better(metric: str, value: float | None, best: float | None) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value < best if metric.endswith("loss") else value > best


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _from_bytes(blob: bytes) -> Any:
    # Our own checkpoints hold numpy RNG state and python tuples, so weights_only is too strict.
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, (RuntimeError, MemoryError)) and (
        isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


def fit(
    cfg: RunConfig,
    store: Store,
    *,
    data_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    progress: Progress | None = None,
    label: str | None = None,
    worker: str | None = None,
) -> RunResult:
    """Train ``cfg`` to completion, resuming from the store; every epoch is committed as it ends."""
    run_id = cfg.run_id()
    store.upsert_run(run_id, config_json=cfg.to_json(), seed=cfg.seed,
                     label=label, epochs_planned=cfg.epochs)
    existing = store.get_run(run_id)
    if existing["status"] in FINAL_STATUSES:
        return RunResult(run_id, existing["status"], existing.get("status_detail"), store.epochs(run_id), skipped=True)
    worker = worker or default_worker_id()
    won, existing = claim(store, run_id, worker)  # atomically: another process may want this run too
    if not won:  # finished meanwhile, or held by a live worker of another process: theirs
        detail = existing.status_detail if existing.status != "running" else f"trained by {existing.worker}"
        return RunResult(run_id, existing.status, detail, store.epochs(run_id), skipped=True)

    t_start = time.perf_counter()
    accounted = 0.0  # wall time already added to the store with committed epochs
    setup: Setup | None = None
    rows: list[dict[str, Any]] = []
    start_epoch = 1
    try:
        setup = build(cfg, data_dir, dataset)
        ds = setup.dataset
        store.update_run(
            run_id, data_source=ds.source, data_checksum=ds.checksum, params=setup.params, flops=setup.flops,
            batch_size_used=setup.batch_size, device=str(setup.device),
            env_json=json.dumps(environment(setup.device)),
        )
        best_value = None
        ckpt = store.load_checkpoint(run_id, "last")
        if ckpt is not None:
            done, blob = ckpt
            state = _from_bytes(blob)
            setup.model.load_state_dict(state["model"])
            setup.optimizer.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"])
            best_value = state.get("best_value")
            start_epoch = done + 1
        if progress:
            progress("start", {
                "run_id": run_id, "label": label, "resumed_from": start_epoch - 1, "epochs": cfg.epochs,
                "params": setup.params, "flops": setup.flops, "device": str(setup.device),
                "batch_size": setup.batch_size, "dataset": ds.name, "source": ds.source, "checksum": ds.checksum,
                "n_train": len(ds.y_train), "n_val": None if ds.y_val is None else len(ds.y_val),
                "n_test": len(ds.y_test), "model": cfg.model.name, "notes": list(ds.notes),
            })
        metric = cfg.best_metric
        for epoch in range(start_epoch, cfg.epochs + 1):
            reset_peak_memory(setup.device)
            t0 = time.perf_counter()
            train = train_epoch(setup, epoch, progress)
            if setup.device.type == "cuda":
                torch.cuda.synchronize(setup.device)
            t_train = time.perf_counter() - t0
            row = epoch_row(setup, epoch, train, t_train)
            row["epoch_time_s"] = time.perf_counter() - t0
            best_blob = None
            if _is_better(metric, row.get(metric), best_value):
                best_value = row[metric]
                best_blob = _to_bytes({"model": setup.model.state_dict(), "epoch": epoch, metric: best_value})
            last_blob = _to_bytes({
                "model": setup.model.state_dict(), "optimizer": setup.optimizer.state_dict(),
                "rng": _rng_state(), "epoch": epoch, "best_value": best_value,
            })
            elapsed = time.perf_counter() - t_start
            store.commit_epoch(run_id, epoch, row, last_blob, best_blob, add_wall_time_s=elapsed - accounted)
            accounted = elapsed
            rows.append({"epoch": epoch, **row})
            if progress:
                progress("epoch", {"run_id": run_id, "epoch": epoch, "row": row})
        status, detail = "completed", None
    except Diverged as d:
        status, detail = "diverged", json.dumps({"epoch": d.epoch, "step": d.step, "reason": str(d)})
    except KeyboardInterrupt:
        store.set_status(run_id, "interrupted", f"stopped by the user after epoch {start_epoch - 1 + len(rows)}",
                         owner=worker, add_wall_time_s=time.perf_counter() - t_start - accounted)
        raise
    except Exception as err:  # noqa: BLE001 - any error of a run is that run's outcome
        if isinstance(err, SweeplabError):
            store.set_status(run_id, "failed", str(err), owner=worker,
                             add_wall_time_s=time.perf_counter() - t_start - accounted)
            raise
        if _is_oom(err):
            bs = setup.batch_size if setup else cfg.batch_size
            status, detail = "oom", json.dumps({"batch_size": bs, "error": str(err).splitlines()[0][:300]})
        else:
            status, detail = "failed", "".join(traceback.format_exception_only(type(err), err)).strip()[:2000]
    store.set_status(run_id, status, detail, owner=worker, add_wall_time_s=time.perf_counter() - t_start - accounted)
    result = RunResult(run_id, status, detail, store.epochs(run_id), resumed_from=start_epoch - 1)
    if progress:
        progress("end", {"run_id": run_id, "status": status, "detail": detail})
    return result
