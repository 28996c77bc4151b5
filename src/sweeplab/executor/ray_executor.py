"""Runs tasks on a Ray cluster (``sweeplab run --executor ray``), one Ray task per run.

The same ``run(tasks, fn, on_event)`` as the local executors: ``fn(payload, emit)`` runs in a Ray
worker, and every ``emit(event, info)`` streams back to the driver as it happens (each task is a
Ray *streaming generator*, ``num_returns="streaming"``), where ``on_event`` sees it in the
driver's main thread, in order. So whatever the events carry (an epoch row and its checkpoint) the
driver can commit as it arrives, and a worker never needs the driver's files.

Ray core, not Ray Tune: Tune keeps its own trial folders and state beside our store and adds
per-trial overhead. Each task asks for ``num_cpus`` (and a possibly fractional ``num_gpus``) and
limits torch to that many threads; the driver keeps no more tasks in flight than the cluster's
resources can run, so a run is claimed only when it can start.

Fault tolerance is ours, not Ray's (``max_retries=0`` on the Ray task): a task whose worker or
node dies is resubmitted up to ``max_retries`` times with a payload built afresh by ``prepare``
(for a run: its last committed checkpoint), then reported as :class:`TaskCrashed`. An exception
in the task's own code is not retried (it would fail again): it is reported as crashed with its
text. Ctrl-C or SIGTERM on the driver cancels every task (their workers are killed) and raises.

With no ``address`` the executor starts a Ray on this machine for the study and stops it after;
``"auto"`` or ``host:port`` joins a running cluster. An already initialised Ray (a notebook, a
test) is used as it is and left running.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from sweeplab.errors import ConfigError

from .local import OnEvent, Task, TaskCrashed, TaskFn, Terminated, _signal_handlers

#: The one line a user without Ray reads.
INSTALL_HINT = "--executor ray needs Ray: pip install 'sweeplab[ray]'"


@dataclass(frozen=True)
class RayOptions:
    """Where and with what each run executes on Ray (``sweeplab run --executor ray``)."""

    address: str | None = None
    """None: start a Ray on this machine; ``auto`` or ``host:port``: join that cluster."""
    num_cpus: float = 1.0
    """CPU cores each run reserves (and torch threads it uses); one per run, as locally."""
    num_gpus: float = 0.0
    """GPUs each run reserves; fractional to share one GPU (0.25: four runs per GPU)."""
    max_retries: int = 2
    """Times a run whose worker died is restarted from its last committed epoch."""
    share_data: bool = True
    """The driver puts each dataset in Ray's object store once and tasks read it from there
    (``--ray-data object-store``); False: every worker loads it from its own path or cache
    (``--ray-data worker``)."""


@dataclass(frozen=True)
class Skip:
    """What ``prepare`` returns for a task not to submit: ``result`` is its result as it is."""

    result: Any


Prepare = Callable[[Task, int], Any]


def require_ray(local: bool = False) -> Any:
    """``import ray``, or ``ConfigError`` saying how to install it. For a Ray of our own
    (``local``: no address to join) first ask it to listen on loopback only.

    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when imported: "0" binds its head, raylet and
    workers to 127.0.0.1 instead of the machine's network address. A Ray for one study on this
    machine has no reason to be reachable from the network.
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """``host:port`` (or ``ray://host:port``) accepts a TCP connection within ``timeout_s``;
    ``ConfigError`` naming ``--address`` otherwise. ``ray.init`` retries an address where nothing
    listens for minutes, printing Ray's log; ``auto`` is left to Ray (it fails at once)."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: give auto or the head node's host:port (such as 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        why = err.strerror or str(err) or type(err).__name__
        raise ConfigError(f"--address {address!r}: nothing answers at {host}:{port} ({why}); give auto or the "
                          "host:port that `ray start --head` printed") from None


@contextmanager
def connected(options: RayOptions) -> Iterator[None]:
    """Ray joined (or, without an address, started) for the length of the block, and the cluster
    checked to hold one run: ``sweeplab run`` enters it before the study is stored, so a bad
    ``--address`` or resources no node has are one line while the store is still untouched.
    The executor then finds Ray initialised and uses it; a Ray started here stops after."""
    ray = require_ray(local=options.address is None)
    ex = RayExecutor(options)
    started = ex._connect(ray)
    try:
        ex._check_fits(ray)
        yield
    finally:
        if started:
            ray.shutdown()


def _stream(fn: TaskFn, payload: Any, threads: int):
    """The Ray task: run ``fn`` in a thread, yield its events as they come, then its result."""
    import torch

    os.environ["SWEEPLAB_THREADS"] = str(threads)  # the trainer reads its budget from here
    torch.set_num_threads(threads)
    items: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            items.put(("result", fn(payload, lambda event, info: items.put(("event", event, info)))))
        except BaseException as err:  # noqa: BLE001 - reported to the driver, not retried
            items.put(("error", f"{type(err).__name__}: {err}"))

    yield ("event", "worker", {"pid": os.getpid(), "host": socket.gethostname()})
    threading.Thread(target=work, name="sweeplab-task", daemon=True).start()
    while True:
        item = items.get()
        yield item
        if item[0] != "event":
            return


def _drain(ray: Any, key: str, gen: Any, out: queue.Queue) -> None:
    """Driver thread: read one task's stream into ``out`` as (key, kind, value)."""
    try:
        for ref in gen:
            item = ray.get(ref)
            if item[0] == "event":
                out.put((key, "event", (item[1], item[2])))
            else:
                out.put((key, item[0], item[1]))
                return
        out.put((key, "lost", "the task ended without a result"))
    except ray.exceptions.TaskCancelledError:
        out.put((key, "cancelled", None))
    except ray.exceptions.RayTaskError as err:  # raised by the task's own code
        out.put((key, "error", str(err).strip().splitlines()[-1]))
    except Exception as err:  # noqa: BLE001 - worker or node died, object lost: retry
        out.put((key, "lost", f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"))


class RayExecutor:
    """Runs tasks as Ray streaming-generator tasks; ``prepare(task, attempt)`` builds each payload."""

    def __init__(self, options: RayOptions | None = None, prepare: Prepare | None = None):
        self.options = options or RayOptions()
        self.prepare = prepare
        self._stop: list[KeyboardInterrupt] = []

    def worker_ids(self) -> set[str]:
        """The driver's own id: the driver holds (claims) the runs it hands to Ray."""
        return {f"{socket.gethostname()}:{os.getpid()}"}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop:
            raise self._stop[0]
        self._stop.append(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())

    def _connect(self, ray: Any) -> bool:
        """Connect to Ray; True when this call started it (and so must shut it down)."""
        if ray.is_initialized():
            return False
        address = self.options.address
        if address is not None:
            check_reachable(address)
        try:
            if address is None:  # a Ray of our own, for this study only
                ray.init(address="local", include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise ConfigError(f"--address {address!r}: cannot join a Ray cluster there ({err})") from None
        return True

    def _fits(self, ray: Any) -> int:
        """How many tasks the cluster can run at once with the resources each one asks for."""
        total = ray.cluster_resources()
        opts = self.options
        n = int(total.get("CPU", 0) // opts.num_cpus) if opts.num_cpus else 1 << 30
        if opts.num_gpus:
            n = min(n, int(total.get("GPU", 0) // opts.num_gpus))
        return n

    def _capacity(self, ray: Any) -> int:
        # at least one: while a lost node is replaced the task waits in Ray's queue
        return max(1, self._fits(ray))

    def _check_fits(self, ray: Any) -> None:
        """A run that no node of the cluster can hold would wait forever: say so instead."""
        if self._fits(ray) == 0:
            total, opts = ray.cluster_resources(), self.options
            raise ConfigError(f"a run asks for {opts.num_cpus:g} CPUs and {opts.num_gpus:g} GPUs (--num-cpus/--num-gpus "
                              f"or [study] resources): the Ray cluster has {total.get('CPU', 0):g} CPUs and "
                              f"{total.get('GPU', 0):g} GPUs; ask for at most that")

    def run(self, tasks: list[Task], fn: TaskFn, on_event: OnEvent) -> dict[str, Any]:
        ray = require_ray(local=self.options.address is None)
        started = self._connect(ray)
        self._stop.clear()
        try:
            self._check_fits(ray)
            with _signal_handlers(self._on_signal, signal.SIGINT, signal.SIGTERM):
                return _Round(self, ray, fn, on_event).run(tasks)
        finally:
            if started:
                ray.shutdown()


class _Round:
    """One ``RayExecutor.run``: submissions, the event stream, retries."""

    def __init__(self, ex: RayExecutor, ray: Any, fn: TaskFn, on_event: OnEvent):
        self.ex, self.ray, self.fn, self.on_event = ex, ray, fn, on_event
        opts = ex.options
        self.remote = ray.remote(_stream).options(
            num_cpus=opts.num_cpus, num_gpus=opts.num_gpus, max_retries=0, num_returns="streaming")
        self.threads = max(1, int(round(opts.num_cpus)))
        self.out: queue.Queue = queue.Queue()
        self.running: dict[str, Any] = {}
        self.attempts: dict[str, int] = defaultdict(int)
        self.results: dict[str, Any] = {}
        self.streams: list[threading.Thread] = []

    def _submit(self, task: Task) -> None:
        prepare = self.ex.prepare
        payload = prepare(task, self.attempts[task.key]) if prepare else task.payload
        if isinstance(payload, Skip):
            self.results[task.key] = payload.result
            return
        gen = self.remote.remote(self.fn, payload, self.threads)
        self.running[task.key] = gen
        stream = threading.Thread(target=_drain, args=(self.ray, task.key, gen, self.out),
                                  name="sweeplab-ray-stream", daemon=True)
        stream.start()
        self.streams.append(stream)

    def _join_streams(self, timeout_s: float = 30.0) -> None:
        """Wait for every stream thread to see its (cancelled) task end. ``ray.shutdown`` while one
        still reads would make Ray start again inside that thread, and that core worker then ends
        the whole process before the driver marks its runs interrupted."""
        deadline = time.monotonic() + timeout_s
        for stream in self.streams:
            stream.join(max(0.0, deadline - time.monotonic()))

    def run(self, tasks: list[Task]) -> dict[str, Any]:
        by_key = {t.key: t for t in tasks}
        pending = deque(tasks)
        try:
            while pending or self.running:
                if self.ex._stop:
                    raise self.ex._stop[0]
                while pending and len(self.running) < self.ex._capacity(self.ray):
                    self._submit(pending.popleft())
                try:
                    key, kind, value = self.out.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "event":
                    self.on_event(key, *value)
                    continue
                self.running.pop(key, None)
                if kind == "result":
                    self.results[key] = value
                elif kind == "lost" and self.attempts[key] < self.ex.options.max_retries:
                    self.attempts[key] += 1
                    self.on_event(key, "retry", {"attempt": self.attempts[key], "reason": value})
                    pending.appendleft(by_key[key])
                else:
                    self.results[key] = TaskCrashed(key, _crash_reason(kind, value, self.attempts[key]))
        except BaseException:
            for gen in self.running.values():
                self.ray.cancel(gen, force=True)
            self._join_streams()
            raise
        return self.results


def _crash_reason(kind: str, value: Any, retries: int) -> str:
    if kind == "lost":
        return f"Ray worker died ({value})" + (f", also after {retries} retries" if retries else "")
    return str(value)
