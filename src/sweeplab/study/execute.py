"""Running a study: record it in the store, decide what is left, hand the runs to an executor.

Finished runs (completed or diverged) are never trained again; anything else (never started,
interrupted, killed mid-epoch, failed, out of memory) is (re)started and resumes from its last
committed epoch. The study always goes on: one run's outcome never stops the others.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sweeplab.config import RunConfig
from sweeplab.errors import ConfigError, StoreError
from sweeplab.executor import Executor, Task, TaskCrashed, Terminated, default_workers, make_executor
from sweeplab.executor.ray_executor import RayExecutor, RayOptions, require_ray
from sweeplab.models import is_local
from sweeplab.store import Arm, Link, Store
from sweeplab.train.loop import record_run
from sweeplab.train.preflight import preflight
from sweeplab.train.remote import train_remote
from sweeplab.train.task import RunTask, run_task
from sweeplab.vocabulary import BASELINE_ARM, FINAL_STATUSES

from .remote import RemoteRuns
from .sharing import TAKE_OVER, held_elsewhere, wait_for_others
from .spec import RunSpec, StudySpec

OnEvent = Callable[[str, str, dict[str, Any]], None]


@dataclass
class StudyPlan:
    """The study's unique runs, split into those already finished and those still to train."""

    runs: list[RunSpec]
    done: list[RunSpec] = field(default_factory=list)
    todo: list[RunSpec] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    #: The study's version these runs belong to, how many it has, and whether this plan's
    #: definition was new to the store (a changed file, or new overrides: see record_study).
    version: int = 1
    versions: int = 1
    new_version: bool = False


def record_study(spec: StudySpec, store: Store) -> tuple[int, int, bool]:
    """Insert the study's runs (pending unless known) and its arms and links; idempotent.

    A definition not seen before under this study name is recorded as a new version of the
    study; one made with command-line overrides (``spec.cli_overrides``) is marked a variant,
    which reports and exports do not show by default. Returns (version, versions, new).
    """
    for r in spec.unique_runs():
        record_run(store, r.config, r.label)
    arms = [Arm(a.name, json.dumps(a.override, sort_keys=True), a.description) for a in spec.arms]
    links = [Link(arm=r.arm, seed=r.seed, run_id=r.run_id, label=r.label) for r in spec.runs]
    try:
        known = len(store.study_versions(spec.name))
    except StoreError:  # a study new to the store
        known = 0
    saved = store.save_study(spec.name, spec_json=spec.to_json(), arms=arms, links=links,
                             description=spec.description, metric=spec.metric,
                             variant=bool(spec.cli_overrides))
    return saved.version, saved.versions, saved.versions > known


def plan_study(spec: StudySpec, store: Store | None) -> StudyPlan:
    """Which unique runs are finished and which are left, from the store (None: all left)."""
    plan = StudyPlan(runs=list(spec.unique_runs()))
    for r in plan.runs:
        status = "new"
        if store is not None:
            try:
                status = store.get_run(r.run_id)["status"]
            except StoreError:  # unknown to the store: never run
                status = "new"
        plan.status[r.run_id] = status
        (plan.done if status in FINAL_STATUSES else plan.todo).append(r)
    return plan


def user_code_checks(spec: StudySpec) -> list[tuple[str, RunConfig]]:
    """(where, config) of each run, for :func:`preflight` errors that name the arm."""
    return [("baseline" if r.arm == BASELINE_ARM else f"arm {r.arm!r}", r.config) for r in spec.unique_runs()]


def prepare_study(spec: StudySpec, store_path: str | Path, data_dir: str | Path | None = None) -> StudyPlan:
    """Check the user's own models on their data (before anything is stored), mark runs left
    ``running`` by dead processes, record the study, and plan what is left."""
    preflight(user_code_checks(spec), data_dir)
    with Store(store_path) as store:
        store.reset_stale_running()
        version, versions, new = record_study(spec, store)
        plan = plan_study(spec, store)
        plan.version, plan.versions, plan.new_version = version, versions, new
        return plan


def run_study(
    spec: StudySpec,
    store_path: str | Path,
    *,
    plan: StudyPlan | None = None,
    workers: int | None = None,
    threads: int | None = None,
    data_dir: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    on_event: OnEvent | None = None,
    on_run_end: Callable[[str, dict[str, Any]], None] | None = None,
    ray: RayOptions | None = None,
) -> dict[str, Any]:
    """Train every run of the study that is not finished; returns run id -> task result.

    ``plan`` is :func:`prepare_study`'s result when the caller already has it. ``ray``: train on a
    Ray cluster (:class:`RayOptions`) instead of local worker processes.
    """
    store_path = Path(store_path)
    if plan is None:
        plan = prepare_study(spec, store_path, data_dir)
    todo = plan.todo
    if not todo:
        return {}
    tasks = [
        Task(r.run_id, RunTask(
            config_json=r.config.to_json(), store_path=str(store_path), label=r.label,
            data_dir=None if data_dir is None else str(data_dir),
            tensorboard_dir=None if tensorboard_dir is None else str(tensorboard_dir),
        ))
        for r in todo
    ]

    def relay(key: str, event: str, info: dict[str, Any]) -> None:
        if on_event is not None:
            on_event(key, event, info)
        if event == "end" and on_run_end is not None:
            on_run_end(key, info)

    if ray is not None:
        return _run_on_ray(spec, store_path, tasks, ray, data_dir, tensorboard_dir, relay)
    workers, threads = _local_workers(spec, todo, workers, threads)
    return _execute(store_path, tasks, make_executor(workers, threads), run_task, relay)


def _local_workers(spec: StudySpec, todo: list[RunSpec], workers: int | None,
                   threads: int | None) -> tuple[int, int | None]:
    """Worker processes and threads for the local executor (one in-process worker for local models)."""
    local = sorted({r.config.model.name for r in todo if is_local(r.config.model.name)})
    if local and (workers is None or workers > 1):
        warnings.warn(f"model {', '.join(local)} is registered in this process only, so the study trains in "
                      "one in-process worker; name it as \"file.py:Name\" in the study to train in parallel",
                      stacklevel=3)
        workers = 1
    if workers is None:
        from sweeplab.train.device import resolve_device

        workers, auto_threads = default_workers(resolve_device(spec.runs[0].config.device).type, len(todo))
        threads = threads or auto_threads
    return workers, threads


def check_ray_study(spec: StudySpec, tensorboard: bool = False) -> None:
    """``ConfigError`` when the study cannot train on Ray; called before Ray starts and before the
    study is recorded (and again by :func:`run_study`, for callers that go straight there)."""
    local = sorted({r.config.model.name for r in spec.unique_runs() if is_local(r.config.model.name)})
    if local:
        raise ConfigError(f"model {', '.join(local)} is registered in this process only, so Ray workers cannot "
                          "build it; name it as \"file.py:Name\" in the study (its code travels with the run)")
    if tensorboard:
        raise ConfigError("--tensorboard is not supported with --executor ray; use the local executor")


def _run_on_ray(spec: StudySpec, store_path: Path, tasks: list[Task], options: RayOptions,
                data_dir: str | Path | None, tensorboard_dir: str | Path | None, relay: OnEvent) -> dict[str, Any]:
    """Train on Ray: the runs' code must travel by content, and this process alone writes the store."""
    check_ray_study(spec, tensorboard_dir is not None)
    require_ray(local=options.address is None)
    with Store(store_path) as store:
        remote = RemoteRuns(store, relay, data_dir, share_data=options.share_data)
        return _execute(store_path, tasks, RayExecutor(options, remote.prepare), train_remote, remote.on_event)


def _execute(store_path: Path, tasks: list[Task], executor: Executor, fn: Callable[[Any, Any], Any],
             relay: OnEvent) -> dict[str, Any]:
    """Run the tasks; record crashed ones; Ctrl-C marks the runs this process held interrupted."""
    try:
        results = executor.run(tasks, fn, relay)
        _record_crashes(store_path, results, executor.worker_ids(), relay)
        _finish_shared(store_path, tasks, results, executor, fn, relay)
    except KeyboardInterrupt as stop:
        detail = "stopped by SIGTERM" if isinstance(stop, Terminated) else "stopped by the user (Ctrl-C)"
        with Store(store_path) as store:  # only the runs this process's workers held
            store.mark_interrupted([t.key for t in tasks], detail, workers=executor.worker_ids())
        raise
    return results


def _finish_shared(store_path: Path, tasks: list[Task], results: dict[str, Any], executor: Executor,
                   fn: Callable[[Any, Any], Any], relay: OnEvent) -> None:
    """Wait for the runs another process holds; train here those it gives up."""
    while elsewhere := held_elsewhere(results):
        statuses = wait_for_others(store_path, elsewhere)
        for run_id, status in statuses.items():
            results[run_id] = {"run_id": run_id, "status": status, "detail": "trained by another process",
                               "skipped": True}
        retry = [t for t in tasks if statuses.get(t.key) in TAKE_OVER]
        if retry:
            results.update(executor.run(retry, fn, relay))
            _record_crashes(store_path, results, executor.worker_ids(), relay)


def _record_crashes(store_path: Path, results: dict[str, Any], own: set[str], relay: OnEvent) -> None:
    """Record tasks whose worker died as failed runs (unless another process holds or finished them)."""
    crashed = {k: v for k, v in results.items() if isinstance(v, TaskCrashed)}
    if not crashed:
        return
    with Store(store_path) as store:
        for run_id, c in crashed.items():
            run = store.get_run(run_id)
            if not (run.status == "pending" or (run.status == "running" and run.worker in own)):
                # finished, or held by another process (which the caller then waits for)
                results[run_id] = {"run_id": run_id, "status": run.status, "detail": run.status_detail,
                                   "skipped": True}
                continue
            store.set_status(run_id, "failed", c.reason)
            results[run_id] = {"run_id": run_id, "status": "failed", "detail": c.reason, "skipped": False}
            relay(run_id, "end", {"run_id": run_id, "status": "failed", "detail": c.reason})
