"""Where and in what order runs execute: in this process, or in local worker processes.

An executor takes opaque tasks and a task function ``fn(payload, emit) -> result``; it never
knows what a model is. ``emit(event, info)`` sends progress events back to the driver, which
sees them through ``on_event(key, event, info)`` in its own thread. The Ray executor
(``ray_executor.py``) implements the same ``run`` signature, its events streamed back from the cluster.

Worker processes are started with ``spawn`` (a fork of a process that has initialised torch's
thread pools can deadlock) and each limits torch to ``threads`` intra-op threads.

Stopping: workers ignore Ctrl-C (a terminal sends SIGINT to the whole process group) and die with
their driver (parent-death signal, and a thread watching the parent pid). The driver turns SIGINT
and SIGTERM into a flag it checks between waits, kills its workers (an epoch commit is atomic, so
a worker killed at any instant loses at most its current epoch) and raises ``KeyboardInterrupt``
(``Terminated`` for SIGTERM), leaving the runs those workers held for the caller to mark.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs; the CLI exits with 143."""

    exit_code = 143


class Executor(Protocol):
    def run(self, tasks: list[Task], fn: TaskFn, on_event: OnEvent) -> dict[str, Any]: ...

    def worker_ids(self) -> set[str]: ...


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _signal_handlers(handler: Callable[[int, Any], None], *signums: int) -> Iterator[None]:
    """Install ``handler`` for ``signums`` while inside (main thread only; elsewhere a no-op)."""
    if not _in_main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def sigterm_as_interrupt():
    """Context manager: while inside, SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``)."""
    return _signal_handlers(_raise_terminated, signal.SIGTERM)


class InProcessExecutor:
    """Runs tasks one after another in this process (``--workers 1``)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def worker_ids(self) -> set[str]:
        return {f"{socket.gethostname()}:{os.getpid()}"}

    def run(self, tasks: list[Task], fn: TaskFn, on_event: OnEvent) -> dict[str, Any]:
        if self.threads:
            import torch

            os.environ["SWEEPLAB_THREADS"] = str(self.threads)
            torch.set_num_threads(self.threads)
        results: dict[str, Any] = {}
        with sigterm_as_interrupt():  # the task sees it as Ctrl-C
            for task in tasks:
                results[task.key] = fn(task.payload, lambda ev, info, k=task.key: on_event(k, ev, info))
        return results


# -- worker-process side -------------------------------------------------------------------------
_events: Any = None


def _init_worker(events: Any, threads: int | None, parent: int | None = None) -> None:
    global _events
    _events = events
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops its workers itself
    if parent is not None:
        _die_with_parent(parent)
    if threads:
        import torch

        # The trainer reads the budget from the environment (it never sees the executor).
        os.environ["SWEEPLAB_THREADS"] = str(threads)
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)


def _die_with_parent(parent: int) -> None:
    """Exit as soon as the driver ``parent`` is gone, even if it was killed with SIGKILL."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:  # portable fallback: orphans are re-parented
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:  # died before the signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="sweeplab-parent-watch", daemon=True).start()


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
        self._pids: set[int] = set()
        self._stop: list[KeyboardInterrupt] = []

    def worker_ids(self) -> set[str]:
        """The ``worker`` ids (``host:pid``) of every worker process this executor started."""
        host = socket.gethostname()
        return {f"{host}:{pid}" for pid in self._pids}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop:  # a second signal while stopping: stop waiting for anything
            raise self._stop[0]
        self._stop.append(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())

    def _check_stop(self) -> None:
        if self._stop:
            raise self._stop[0]

    def run(self, tasks: list[Task], fn: TaskFn, on_event: OnEvent) -> dict[str, Any]:
        ctx = mp.get_context("spawn")
        events = ctx.Queue()
        stop = threading.Event()
        self._stop.clear()

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
            with _signal_handlers(self._on_signal, signal.SIGINT, signal.SIGTERM):
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
            initializer=_init_worker, initargs=(events, self.threads, os.getpid()),
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
            self._pids.update(pool._processes or {})
            while futures:
                self._check_stop()
                done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                self._pids.update(pool._processes or {})
                for fut in done:
                    task = futures.pop(fut)
                    try:
                        results[task.key] = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        results[task.key] = TaskCrashed(task.key, "worker process died")
                    if not broken and queued and not self._stop:
                        t = queued.pop(0)
                        futures[pool.submit(_call, fn, t.key, t.payload)] = t
                if broken:
                    for fut, task in futures.items():
                        results[task.key] = TaskCrashed(task.key, "worker process died")
                    futures.clear()
            self._check_stop()
        except BaseException:
            _kill_pool(pool)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        return queued if broken else []


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: terminate its workers, wait briefly for them, then shut it down."""
    procs = list((pool._processes or {}).values())
    for p in procs:
        try:
            p.terminate()
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 3
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(1)
    pool.shutdown(wait=False, cancel_futures=True)
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(5)


def make_executor(workers: int, threads: int | None = None) -> Executor:
    """One worker runs in this process (no spawn cost, Ctrl-C is simplest); more use processes."""
    if workers <= 1:
        return InProcessExecutor(threads)
    return ProcessExecutor(workers, threads)
