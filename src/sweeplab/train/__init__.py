"""Training: optimizers, schedules and losses from config, and the build -> fit loop."""

from .batch_size import find_max_batch_size
from .device import environment, resolve_device
from .losses import build_loss
from .epoch import Diverged, evaluate, train_epoch
from .loop import FINAL_STATUSES, RunResult, fit, record_run
from .setup import Setup, build
from .optim import build_optimizer
from .schedules import Schedule, build_schedule

__all__ = [
    "FINAL_STATUSES",
    "Diverged",
    "RunResult",
    "Schedule",
    "Setup",
    "build",
    "build_loss",
    "build_optimizer",
    "build_schedule",
    "environment",
    "evaluate",
    "find_max_batch_size",
    "fit",
    "record_run",
    "resolve_device",
    "train_epoch",
]
