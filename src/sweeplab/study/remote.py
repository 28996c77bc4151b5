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

from sweeplab.executor import Task
from sweeplab.executor.ray_executor import Skip
from sweeplab.store import Store, default_worker_id
from sweeplab.store.claims import claim
from sweeplab.train.remote import RemoteRun

OnEvent = Callable[[str, str, dict[str, Any]], None]


class RemoteRuns:
    """Claims, ships and commits the runs of one study trained away from the store."""

    def __init__(self, store: Store, relay: OnEvent, data_dir: str | Path | None = None):
        self.store, self.relay = store, relay
        self.data_dir = None if data_dir is None else str(data_dir)
        self.worker = default_worker_id()

    def prepare(self, task: Task, attempt: int) -> RemoteRun | Skip:
        """The payload for ``task``'s Ray task; on the first attempt, claim its run first."""
        rid, run_task = task.key, task.payload
        if attempt == 0:
            won, run = claim(self.store, rid, self.worker)
            if not won:  # finished meanwhile, or held by a live worker of another process
                detail = run.status_detail if run.status != "running" else f"trained by {run.worker}"
                return Skip({"run_id": rid, "status": run.status, "detail": detail, "skipped": True})
        last = self.store.load_checkpoint(rid, "last")
        return RemoteRun(config_json=run_task.config_json, label=run_task.label, data_dir=self.data_dir,
                         epochs=self.store.epochs(rid), last=None if last is None else last.data,
                         worker=self.worker)

    def on_event(self, rid: str, event: str, info: dict[str, Any]) -> None:
        """Commit what the worker reports; relay the rest (and the epochs, without bytes)."""
        if event == "record":
            self.store.update_run(rid, **{k: v for k, v in info.items() if v is not None})
        elif event == "commit":
            self.store.commit_epoch(rid, info["epoch"], info["row"], info["last"], info["best"],
                                    add_wall_time_s=info["add_wall_time_s"])
        elif event == "status":
            self.store.set_status(rid, info["status"], info["detail"], owner=self.worker,
                                  add_wall_time_s=info["add_wall_time_s"])
        else:
            self.relay(rid, event, info)
