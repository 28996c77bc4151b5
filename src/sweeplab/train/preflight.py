"""Before anything is stored or trained: build the user's own models for their real data and push
one dry batch through each, so a network that does not fit the dataset is one line and exit 2,
not a study of failed runs.

Built-in models are checked by the config layer (their options on the meta device); the user's
code can only be judged on the data's real shape, so it is built here, on the CPU, once per
distinct (model, code, dataset).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

from sweeplab.config import RunConfig
from sweeplab.data import Dataset
from sweeplab.errors import ConfigError, SweeplabError
from sweeplab.models import is_local

#: Examples in the dry batch (2: BatchNorm in eval mode, and a batch dimension that is not 1).
DRY_BATCH = 2


def uses_user_code(cfg: RunConfig) -> bool:
    """True when the run's model or data is the user's (a code file, or registered in a notebook)."""
    return bool(cfg.code) or is_local(cfg.model.name)


def dry_batch(ds: Dataset) -> torch.Tensor:
    """The first training examples, as the model sees them (float images in [0, 1])."""
    x = ds.x_train[:DRY_BATCH]
    return x.float() / 255 if ds.kind == "image" else x


def check_forward(model: torch.nn.Module, ds: Dataset, name: str) -> None:
    """One forward pass on the CPU; a failure or an output that is not ``(batch, classes)`` is a
    :class:`ConfigError` naming the model and the input shape."""
    x = dry_batch(ds)
    where = f"{name} on input {tuple(ds.input_shape)}"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except ConfigError:
        raise
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's forward: one line with its own message
        msg = f"SystemExit: {e.code}" if isinstance(e, SystemExit) else (
            str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        raise ConfigError(f"{where}: {msg}", path="model.name") from None
    finally:
        model.train(was_training)
    want = (len(x), ds.num_classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want or not out.is_floating_point():
        got = (f"{out.dtype} logits" if isinstance(out, torch.Tensor) and tuple(out.shape) == want else
               f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}")
        raise ConfigError(f"{where} returns {got}; it must return (batch, classes) = {want} float logits",
                          path="model.name")


def preflight(configs: Iterable[RunConfig | tuple[str, RunConfig]], data_dir: str | Path | None = None) -> int:
    """Check every distinct user model of ``configs`` on its dataset; returns how many were built.

    An item may be ``(where, config)``: errors then name where the config comes from
    (``arm 'wide'.model.name``), as the study file's own errors do.
    """
    from .setup import make_model
    from .task import dataset_for

    seen: set[str] = set()
    for item in configs:
        where, cfg = item if isinstance(item, tuple) else ("", item)
        if not uses_user_code(cfg):
            continue
        key = json.dumps([cfg.model.model_dump(mode="json"), cfg.data.model_dump(mode="json"),
                          {p: f.sha256 for p, f in cfg.code.items()}], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        try:
            ds = dataset_for(cfg, data_dir)
            check_forward(make_model(cfg, ds), ds, cfg.model.name)
        except SweeplabError as e:
            if not where or not e.path:
                raise
            raise type(e)(e.message, path=f"{where}.{e.path}") from None
    return len(seen)
