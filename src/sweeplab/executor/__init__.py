"""Executors: run opaque tasks in this process or in worker processes, relaying progress events."""

from .local import Executor, InProcessExecutor, ProcessExecutor, Task, TaskCrashed, Terminated, make_executor
from .plan import default_workers

__all__ = [
    "Executor",
    "InProcessExecutor",
    "ProcessExecutor",
    "Task",
    "TaskCrashed",
    "Terminated",
    "default_workers",
    "make_executor",
]
