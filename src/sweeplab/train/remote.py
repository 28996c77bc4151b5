"""One run trained where the driver's store is out of reach (a Ray worker on another machine).

The driver alone owns the SQLite store. It ships a :class:`RemoteRun`: the run's config JSON (the
user's own code travels inside it, by content), its committed epoch rows and its last checkpoint.
:func:`train_remote` seeds a private store in a temporary folder with that state and trains with
the same :func:`fit` as everywhere else, so resuming, early stopping and outcomes behave the same.
As each epoch is committed to the private store it emits a ``commit`` event carrying the row and
the checkpoints taken after it; the driver commits those to its own store (``study.remote``).

Events (besides fit's ``start``, ``batch``, ``epoch`` and ``end``):

- ``record``: the run's metadata as fit recorded it (data source, params, device, environment);
- ``commit``: ``epoch``, ``row``, ``last``, ``best`` (bytes or None), ``add_wall_time_s`` and the
  epoch's ``steps`` rows (``eval_every_steps``);
- ``status``: the outcome, ``status``, ``detail`` and ``add_wall_time_s``, sent just before ``end``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sweeplab.config import RunConfig
from sweeplab.errors import SweeplabError
from sweeplab.resolve import run_id
from sweeplab.store import Store

from .loop import fit, record_run
from .shared import SharedDataset
from .task import dataset_for

Emit = Callable[[str, dict[str, Any]], None]

#: Run metadata fit records before training, relayed to the driver in a ``record`` event.
RECORD_FIELDS = ("data_source", "data_checksum", "params", "flops", "batch_size_used", "device", "env_json")
#: Keys of a stored epoch row that are not metrics.
_NOT_METRICS = ("run_id", "epoch", "finished_at")


@dataclass(frozen=True)
class RemoteRun:
    """What a remote worker needs to train (or resume) one run, the store's part included."""

    config_json: str
    label: str | None = None
    data_dir: str | None = None
    #: The run's committed epoch rows (as ``Store.epochs`` returns them) and its checkpoints.
    epochs: list[dict[str, Any]] = field(default_factory=list)
    #: Its committed step rows (``eval_every_steps``; as ``Store.steps`` returns them).
    steps: list[dict[str, Any]] = field(default_factory=list)
    last: bytes | None = None
    worker: str | None = None
    #: The dataset in Ray's object store, put there by the driver; None: the worker loads it itself.
    dataset: SharedDataset | None = None


def seed_store(store: Store, task: RemoteRun) -> str:
    """Record the run in ``store`` with its committed epochs and last checkpoint; its id."""
    cfg = RunConfig.from_json(task.config_json)
    rid = run_id(cfg)
    record_run(store, cfg, task.label)
    for i, row in enumerate(task.epochs):
        metrics = {k: v for k, v in row.items() if k not in _NOT_METRICS}
        last = task.last if i == len(task.epochs) - 1 else None
        store.commit_epoch(rid, int(row["epoch"]), metrics, last, steps=epoch_steps(task.steps, int(row["epoch"])))
    return rid


def epoch_steps(steps: list[dict[str, Any]], epoch: int) -> list[dict[str, Any]]:
    """The step rows of one epoch, as ``commit_epoch`` takes them (no run id or time)."""
    return [{k: v for k, v in row.items() if k not in ("run_id", "finished_at")}
            for row in steps if row.get("epoch") == epoch]


class _Relay:
    """fit's progress callback: emits each event, plus what the driver must commit from it."""

    def __init__(self, store: Store, rid: str, emit: Emit):
        self.store, self.rid, self.emit = store, rid, emit
        self.wall = 0.0  # the private store's wall time already sent to the driver

    def _wall_delta(self) -> float:
        now = self.store.get_run(self.rid).wall_time_s
        delta, self.wall = now - self.wall, now
        return delta

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "start":
            run = self.store.get_run(self.rid)
            self.emit("record", {f: getattr(run, f) for f in RECORD_FIELDS})
        elif event == "epoch":
            epoch = info["epoch"]
            last = self.store.load_checkpoint(self.rid, "last")
            best = self.store.load_checkpoint(self.rid, "best")
            self.emit("commit", {
                "epoch": epoch, "row": info["row"], "last": last.data if last else None,
                "best": best.data if best is not None and best.epoch == epoch else None,
                "add_wall_time_s": self._wall_delta(),
                "steps": epoch_steps(self.store.steps(self.rid), epoch),
            })
        elif event == "end":
            self.finish(info["status"], info.get("detail"))
        self.emit(event, info)

    def finish(self, status: str, detail: str | None) -> None:
        self.emit("status", {"status": status, "detail": detail, "add_wall_time_s": self._wall_delta()})


def train_remote(task: RemoteRun, emit: Emit) -> dict[str, Any]:
    """Train one run against a private store seeded from ``task``; returns id, status, detail."""
    cfg = RunConfig.from_json(task.config_json)
    try:
        dataset = task.dataset.get() if task.dataset is not None else dataset_for(cfg, task.data_dir)
    except Exception:  # noqa: BLE001 - fit loads it again inside its error handling and records the failure
        dataset = None
    with tempfile.TemporaryDirectory(prefix="sweeplab-run-") as tmp, Store(Path(tmp) / "run.db") as store:
        rid = seed_store(store, task)
        relay = _Relay(store, rid, emit)
        try:
            result = fit(cfg, store, dataset=dataset, data_dir=task.data_dir, progress=relay, label=task.label,
                         worker=task.worker)
        except SweeplabError as err:  # recorded as the run's outcome, as run_task does
            relay.finish("failed", str(err))
            emit("end", {"run_id": rid, "status": "failed", "detail": str(err)})
            return {"run_id": rid, "status": "failed", "detail": str(err), "skipped": False}
    return {"run_id": result.run_id, "status": result.status, "detail": result.detail, "skipped": result.skipped}
