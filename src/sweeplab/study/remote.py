"""The driver's side of runs trained on Ray: it alone opens the store.

Before a run is handed to Ray the driver claims it under its own worker id and ships its state
(:func:`RemoteRuns.prepare`: config, committed epochs, last checkpoint); while the run trains, the
worker's ``record``, ``commit`` and ``status`` events (``train.remote``) are written to the store
as they arrive, each epoch row with its checkpoints in one transaction, exactly as a local worker
commits them. A driver killed at any instant leaves the run ``running`` under a dead process, which
the next ``sweeplab run`` resets and resumes from its last committed epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from sweeplab.config import RunConfig
from sweeplab.executor import Task
from sweeplab.executor.ray_executor import Skip
from sweeplab.store import Store, default_worker_id
from sweeplab.store.claims import claim
from sweeplab.train.continuation import Continuation, continue_shorter, shorter_source
from sweeplab.train.remote import RemoteRun
from sweeplab.train.shared import SharedDataset, share
from sweeplab.train.task import dataset_for, dataset_key

OnEvent = Callable[[str, str, dict[str, Any]], None]


class RemoteRuns:
    """Claims, ships and commits the runs of one study trained away from the store."""

    def __init__(self, store: Store, relay: OnEvent, data_dir: str | Path | None = None, share_data: bool = True):
        self.store, self.relay, self.share_data = store, relay, share_data
        self.shared: dict[str, SharedDataset | None] = {}
        self.data_dir = None if data_dir is None else str(data_dir)
        self.worker = default_worker_id()
        self.messages: dict[str, str] = {}

    def prepare(self, task: Task, attempt: int) -> RemoteRun | Skip:
        """The payload for ``task``'s Ray task; on the first attempt, claim its run first."""
        rid, run_task = task.key, task.payload
        if attempt == 0:
            won, run = claim(self.store, rid, self.worker)
            if not won:  # finished meanwhile, or held by a live worker of another process
                detail = run.status_detail if run.status != "running" else f"trained by {run.worker}"
                return Skip({"run_id": rid, "status": run.status, "detail": detail, "skipped": True})
            self._continue(rid, run_task.config_json)
        last = self.store.load_checkpoint(rid, "last")
        return RemoteRun(config_json=run_task.config_json, label=run_task.label, data_dir=self.data_dir,
                         epochs=self.store.epochs(rid), steps=self.store.steps(rid),
                         last=None if last is None else last.data,
                         worker=self.worker, dataset=self._dataset(run_task.config_json))

    def _dataset(self, config_json: str) -> SharedDataset | None:
        """With ``share_data``: the run's dataset, loaded here and put in Ray's object store once
        (``train.shared``). None when it cannot be loaded here: the worker then loads it, and a
        failure is recorded as the run's, as without sharing."""
        if not self.share_data:
            return None
        cfg = RunConfig.from_json(config_json)
        key = dataset_key(cfg, self.data_dir)
        if key not in self.shared:
            import ray

            try:
                self.shared[key] = share(ray, dataset_for(cfg, self.data_dir))
            except Exception:  # noqa: BLE001 - the worker tries and records why it failed
                self.shared[key] = None
        return self.shared[key]

    def _continue(self, rid: str, config_json: str) -> None:
        """A run with no epochs of its own continues a completed shorter run of the same config
        (``train.continuation``) here, on the driver: the worker's private store holds no other
        runs, so it gets the copied epochs and checkpoint in its payload and resumes from them."""
        if self.store.epochs(rid):
            return
        cfg = RunConfig.from_json(config_json)
        source = shorter_source(self.store, cfg)
        if source is None:
            return
        if not isinstance(cfg.batch_size, int):  # "max": the worker's device decides, after this
            self.messages[rid] = Continuation(reason=f'batch_size = "max" is found on the Ray worker, so run '
                                                     f"{source.id} cannot be continued here").message()
            return
        done = continue_shorter(self.store, cfg, rid, batch_size=cfg.batch_size,
                                num_classes=len(source.env.get("classes") or ()))
        if done.message():  # said with the run's start event, as the local path says it
            self.messages[rid] = done.message()

    def on_event(self, rid: str, event: str, info: dict[str, Any]) -> None:
        """Commit what the worker reports; relay the rest (and the epochs, without bytes)."""
        if event == "record":
            self.store.update_run(rid, **{k: v for k, v in info.items() if v is not None})
        elif event == "commit":
            self.store.commit_epoch(rid, info["epoch"], info["row"], info["last"], info["best"],
                                    add_wall_time_s=info["add_wall_time_s"], steps=info.get("steps", ()))
        elif event == "status":
            self.store.set_status(rid, info["status"], info["detail"], owner=self.worker,
                                  add_wall_time_s=info["add_wall_time_s"])
        else:
            if event == "start" and rid in self.messages:
                info = {**info, "continuation": self.messages.pop(rid)}
            self.relay(rid, event, info)
