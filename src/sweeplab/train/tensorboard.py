"""Optional TensorBoard event files per run: scalars per epoch, per evaluation step (runs with
``eval_every_steps``: ``step/test_acc`` etc. at the global step), hparams with final metrics.

``tensorboard --logdir OUT/tensorboard`` then shows a study live. Needs the ``tensorboard``
package (``pip install 'sweeplab[tensorboard]'``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sweeplab.config import RunConfig
from sweeplab.errors import ConfigError
from sweeplab.resolve import run_id

_SCALARS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr",
            "epoch_time_s", "train_images_per_s", "peak_mem_mb")
#: Step-row metrics, written as ``step/<metric>`` with the run's global step.
_STEP_SCALARS = ("train_loss", "test_loss", "test_acc", "val_loss", "val_acc", "lr")


class TensorBoardWriter:
    """Listens to a run's progress events and writes them as TensorBoard events."""

    def __init__(self, root: Path, cfg: RunConfig, label: str | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("TensorBoard output needs the tensorboard package: "
                              "pip install 'sweeplab[tensorboard]'", path="--tensorboard") from None
        self.cfg = cfg
        name = f"{(label or cfg.model.name).replace('/', '_').replace(' ', '_').replace(':', '_')}-seed{cfg.seed}-{run_id(cfg)}"
        self.writer = SummaryWriter(log_dir=str(root / name))
        self.last: dict[str, float] = {}

    def on_event(self, event: str, info: dict[str, Any]) -> None:
        if event == "epoch":
            for key in _SCALARS:
                value = info["row"].get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    group = "loss" if key.endswith("loss") else "accuracy" if key.endswith("acc") else "run"
                    self.writer.add_scalar(f"{group}/{key}", value, info["epoch"])
                    self.last[key] = float(value)
            # the epoch's evaluations every N steps, written as they are committed (with the epoch)
            for row in info.get("steps") or ():
                for key in _STEP_SCALARS:
                    value = row.get(key)
                    if isinstance(value, (int, float)) and math.isfinite(value):
                        self.writer.add_scalar(f"step/{key}", value, row["step"])
            self.writer.flush()
        elif event == "end":
            hparams = {
                "model": self.cfg.model.name, "optim": self.cfg.optim.name, "lr": self.cfg.optim.lr,
                "batch_size": str(self.cfg.batch_size), "epochs": self.cfg.epochs, "seed": self.cfg.seed,
                "loss": self.cfg.loss.name, "status": info["status"],
            }
            metrics = {f"hparam/{k}": v for k, v in self.last.items() if k.endswith(("acc", "loss"))}
            self.writer.add_hparams(hparams, metrics or {"hparam/test_acc": float("nan")}, run_name=".")

    def close(self) -> None:
        self.writer.close()
