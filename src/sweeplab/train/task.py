"""One run as an executor task: a picklable payload in, plain progress events out.

Executors call :func:`run_task` in whatever process they run tasks in. It opens the store itself
(SQLite connections must not cross processes), rebuilds the config from its canonical JSON and
calls :func:`fit`. Events carry only plain data so they can cross a process boundary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sweeplab.config import RunConfig
from sweeplab.data import Dataset, load_dataset
from sweeplab.errors import SweeplabError
from sweeplab.store import Store
from sweeplab.resolve import run_id

from .loop import fit

Emit = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class RunTask:
    """What a worker needs to train one run."""

    config_json: str
    store_path: str
    label: str | None = None
    data_dir: str | None = None
    tensorboard_dir: str | None = None


#: The last dataset this process loaded, so a worker running many arms on one dataset loads it once.
_dataset_memo: dict[str, Dataset] = {}


def dataset_key(cfg: RunConfig, data_dir: str | Path | None) -> str:
    """Equal for runs that load the same dataset (augmentation and normalisation apply later)."""
    code = {path: f.sha256 for path, f in cfg.code.items()}
    return json.dumps([cfg.data.model_dump(mode="json", exclude={"augment", "normalize", "mean", "std"}),
                       str(data_dir), code], sort_keys=True)


def dataset_for(cfg: RunConfig, data_dir: str | Path | None) -> Dataset:
    """The run's dataset, loaded once per process for consecutive runs on the same data."""
    key = dataset_key(cfg, data_dir)
    if key not in _dataset_memo:
        _dataset_memo.clear()
        _dataset_memo[key] = load_dataset(cfg.data, data_dir, code=cfg.code)
    return _dataset_memo[key]


def run_task(task: RunTask, emit: Emit) -> dict[str, Any]:
    """Train (or resume) one run; returns its id, status and detail."""
    cfg = RunConfig.from_json(task.config_json)
    writer = None
    if task.tensorboard_dir:
        from .tensorboard import TensorBoardWriter

        writer = TensorBoardWriter(Path(task.tensorboard_dir), cfg, task.label)

    def progress(event: str, info: dict[str, Any]) -> None:
        if writer is not None:
            writer.on_event(event, info)
        emit(event, info)

    try:
        dataset = dataset_for(cfg, task.data_dir)
    except Exception:  # noqa: BLE001 - fit loads it again inside its error handling and records the failure
        dataset = None
    with Store(task.store_path) as store:
        try:
            result = fit(cfg, store, dataset=dataset, data_dir=task.data_dir, progress=progress, label=task.label)
        except SweeplabError as err:  # recorded as the run's outcome by fit; the study goes on
            failed = {"run_id": run_id(cfg), "status": "failed", "detail": str(err)}
            emit("end", failed)
            return {**failed, "skipped": False}
        finally:
            if writer is not None:
                writer.close()
    return {"run_id": result.run_id, "status": result.status, "detail": result.detail, "skipped": result.skipped}
