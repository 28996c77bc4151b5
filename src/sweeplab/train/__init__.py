"""Training: optimizers, schedules and losses from config, and the build -> fit loop."""

from .batch_size import find_max_batch_size
from .device import environment, resolve_device
from .losses import build_loss
from .loop import FINAL_STATUSES, Diverged, RunResult, Setup, build, evaluate, fit, train_epoch
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
    "resolve_device",
    "train_epoch",
]
