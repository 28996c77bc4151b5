"""Where and in what order runs execute: in this process, or in local worker processes.

An executor takes opaque tasks and a task function ``fn(payload, emit) -> result``; it never
knows what a model is. ``emit(event, info)`` sends progress events back to the driver, which
sees them through ``on_event(key, event, info)`` in its own thread. A Ray executor can implement
the same ``run`` signature later (tasks shipped to the cluster, events relayed by an actor).

Worker processes are started with ``spawn`` (a fork of a process that has initialised torch's
thread pools can deadlock) and each limits torch to ``threads`` intra-op threads.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Protocol

Emit = Callable[[str, dict[str, Any]], None]
TaskFn = Callable[[Any, Emit], Any]
OnEvent = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class Task:
    """One unit of work: ``key`` identifies it in events and results; ``payload`` is picklable."""

    key: str
    payload: Any


@dataclass(frozen=True)
class TaskCrashed:
    """Result of a task whose worker process died (killed, segfault, out of memory)."""

    key: str
    reason: str


class Executor(Protocol):
    def run(self, tasks: list[Task], fn: TaskFn, on_event: OnEvent) -> dict[str, Any]: ...


class InProcessExecutor:
    """Runs tasks one after another in this process (``--workers 1``)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def run(self, tasks: list[Task], fn: TaskFn, on_event: OnEvent) -> dict[str, Any]:
        if self.threads:
            import torch

            os.environ["SWEEPLAB_THREADS"] = str(self.threads)
            torch.set_num_threads(self.threads)
        results: dict[str, Any] = {}
        for task in tasks:
            results[task.key] = fn(task.payload, lambda ev, info, k=task.key: on_event(k, ev, info))
        return results


# -- worker-process side -------------------------------------------------------------------------
_events: Any = None


def _init_worker(events: Any, threads: int | None) -> None:
    global _events
    _events = events
    if threads:
        import torch

        # The trainer reads the budget from the environment (it never sees the executor).
        os.environ["SWEEPLAB_THREADS"] = str(threads)
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)


def _call(fn: TaskFn, key: str, payload: Any) -> Any:
    def emit(event: str, info: dict[str, Any]) -> None:
        _events.put((key, event, info))

    emit("worker", {"pid": os.getpid()})
    return fn(payload, emit)


class ProcessExecutor:
    """Runs tasks in ``workers`` spawned processes, at most one task per worker at a time."""

    def __init__(self, workers: int, threads: int | None = None):
        self.workers = max(1, workers)
        self.threads = threads

    def run(self, tasks: list[Task], fn: TaskFn, on_event: OnEvent) -> dict[str, Any]:
        ctx = mp.get_context("spawn")
        events = ctx.Queue()
        stop = threading.Event()

        def pump() -> None:  # relay worker events to the driver's callback
            while not stop.is_set() or not events.empty():
                try:
                    key, event, info = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                except (EOFError, OSError):
                    return
                on_event(key, event, info)

        relay = threading.Thread(target=pump, name="sweeplab-events", daemon=True)
        relay.start()
        results: dict[str, Any] = {}
        pending = list(tasks)
        try:
            while pending:
                pending = self._run_pool(ctx, events, pending, fn, results)
        finally:
            stop.set()
            relay.join(timeout=5)
        return results

    def _run_pool(self, ctx, events, tasks: list[Task], fn: TaskFn, results: dict[str, Any]) -> list[Task]:
        """Run tasks in one pool; if a worker dies, report its task crashed and return the rest."""
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)), mp_context=ctx,
            initializer=_init_worker, initargs=(events, self.threads),
        )
        futures: dict[Future, Task] = {}
        queued = list(tasks)
        broken = False
        try:
            # Submit no more than there are workers, so a broken pool loses few queued tasks and
            # the run order stays the order given.
            while queued and len(futures) < self.workers:
                t = queued.pop(0)
                futures[pool.submit(_call, fn, t.key, t.payload)] = t
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = futures.pop(fut)
                    try:
                        results[task.key] = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        results[task.key] = TaskCrashed(task.key, "worker process died")
                    if not broken and queued:
                        t = queued.pop(0)
                        futures[pool.submit(_call, fn, t.key, t.payload)] = t
                if broken:
                    for fut, task in futures.items():
                        results[task.key] = TaskCrashed(task.key, "worker process died")
                    futures.clear()
        except BaseException:
            for fut in futures:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        return queued if broken else []


def make_executor(workers: int, threads: int | None = None) -> Executor:
    """One worker runs in this process (no spawn cost, Ctrl-C is simplest); more use processes."""
    if workers <= 1:
        return InProcessExecutor(threads)
    return ProcessExecutor(workers, threads)
