"""Executors: run opaque tasks in this process or in worker processes, relaying progress events."""

from .local import Executor, InProcessExecutor, ProcessExecutor, Task, TaskCrashed, make_executor
from .plan import default_workers

__all__ = [
    "Executor",
    "InProcessExecutor",
    "ProcessExecutor",
    "Task",
    "TaskCrashed",
    "default_workers",
    "make_executor",
]
