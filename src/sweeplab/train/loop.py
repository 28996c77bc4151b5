"""The training loop: ``build`` -> ``fit`` -> ``train_epoch`` / ``evaluate``.

One run, start to finish: load the data onto the device, create the model, then for every epoch
train, evaluate on val/test and commit the epoch's row together with a checkpoint to the store.
A run found half-done in the store continues from its last committed epoch and, on the CPU, gives
the same curves as an uninterrupted one (model, optimizer and RNG states are restored; the loader
and the schedule are pure functions of seed, epoch and step).

Outcomes are results, not crashes: a non-finite loss ends the run as ``diverged``, running out of
memory as ``oom``, any other exception as ``failed``; Ctrl-C marks it ``interrupted`` and re-raises.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sweeplab.config import RunConfig
from sweeplab.data import Dataset
from sweeplab.errors import SweeplabError
from sweeplab.store import Store, default_worker_id
from sweeplab.store.claims import claim
from sweeplab.vocabulary import FINAL_STATUSES, diverged_detail, early_stop_detail, oom_detail
from sweeplab.resolve import run_id

from .device import environment, reset_peak_memory

from .continuation import Continuation, continue_shorter
from .checkpoint import _from_bytes, _is_better, _rng_state, _set_rng_state, _to_bytes
from .early_stop import stop_after
from .epoch import Diverged, Progress, StepEvals, check_step_evals, epoch_row, train_epoch
from .setup import Setup, build



@dataclass
class RunResult:
    """What ``fit`` reports back: the run id, its outcome and its epoch rows."""

    run_id: str
    status: str
    detail: str | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0
    skipped: bool = False
    #: "continued from run X at epoch 50" or "trains from scratch: cosine depends on the total
    #: epochs" when a shorter run of the same config was in the store (see ``continuation``).
    continuation: str | None = None



def _is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, (RuntimeError, MemoryError)) and (
        isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


def record_run(store: Store, cfg: RunConfig, label: str | None = None) -> None:
    """Record ``cfg`` in the store as a pending run (a run already there keeps its state): the
    one place a run is recorded, by the study (``record_study``) and by one-off runs."""
    store.upsert_run(run_id(cfg), config_json=cfg.to_json(), seed=cfg.seed, label=label, epochs_planned=cfg.epochs)


def fit(
    cfg: RunConfig,
    store: Store,
    *,
    data_dir: str | Path | None = None,
    dataset: Dataset | None = None,
    progress: Progress | None = None,
    label: str | None = None,
    worker: str | None = None,
) -> RunResult:
    """Train the recorded run ``cfg`` (see :func:`record_run`) to completion, resuming from the
    store; every epoch is committed as it ends. A finished run, or one another live process
    holds, is returned as it is (``skipped``)."""
    rid = run_id(cfg)
    existing = store.get_run(rid)  # StoreError when the run was never recorded
    if existing.status in FINAL_STATUSES:
        return RunResult(rid, existing.status, existing.status_detail, store.epochs(rid), skipped=True)
    worker = worker or default_worker_id()
    won, existing = claim(store, rid, worker)  # atomically: another process may want this run too
    if not won:  # finished meanwhile, or held by a live worker of another process: theirs
        detail = existing.status_detail if existing.status != "running" else f"trained by {existing.worker}"
        return RunResult(rid, existing.status, detail, store.epochs(rid), skipped=True)
    return _Training(cfg, store, worker, progress, label).run(data_dir, dataset)


class _Training:
    """One claimed run being trained: set up, resume, the epochs, and the outcome recorded."""

    def __init__(self, cfg: RunConfig, store: Store, worker: str, progress: Progress | None, label: str | None):
        self.cfg, self.store, self.worker, self.progress, self.label = cfg, store, worker, progress, label
        self.run_id = run_id(cfg)
        self.t_start = time.perf_counter()
        self.accounted = 0.0  # wall time already added to the store with committed epochs
        self.setup: Setup | None = None
        self.start_epoch = 1
        self.rows: list[dict[str, Any]] = []
        self.metric_history: list[float | None] = []  # the early-stop metric per epoch, resumed ones too
        self.stopped: tuple[int, int] | None = None  # (epoch, best epoch) when early stopping ended it
        self.continuation = Continuation()
        self.evals: StepEvals | None = None  # eval_every_steps: evaluations inside the epochs

    def _unaccounted(self) -> float:
        return time.perf_counter() - self.t_start - self.accounted

    def run(self, data_dir: str | Path | None, dataset: Dataset | None) -> RunResult:
        try:
            best_value = self._start(data_dir, dataset)
            self._epochs(best_value)
            status, detail = "completed", None
            if self.stopped is not None:
                es = self.cfg.early_stop
                detail = early_stop_detail(*self.stopped, self.cfg.stop_metric(), es.patience, es.min_delta)
        except Diverged as d:
            status, detail = "diverged", diverged_detail(d.epoch, d.step, str(d))
        except KeyboardInterrupt:
            self.store.set_status(self.run_id, "interrupted",
                                  f"stopped by the user after epoch {self.start_epoch - 1 + len(self.rows)}",
                                  owner=self.worker, add_wall_time_s=self._unaccounted())
            raise
        except SweeplabError as err:  # bad input found while setting up: recorded, then reported
            self.store.set_status(self.run_id, "failed", str(err), owner=self.worker,
                                  add_wall_time_s=self._unaccounted())
            raise
        except Exception as err:  # noqa: BLE001 - any other error of a run is that run's outcome
            status, detail = self._failure(err)
        except SystemExit as err:  # sys.exit() in the user's code ends this run, not the study
            status, detail = "failed", f"SystemExit: {err.code}"
        self.store.set_status(self.run_id, status, detail, owner=self.worker, add_wall_time_s=self._unaccounted())
        result = RunResult(self.run_id, status, detail, self.store.epochs(self.run_id),
                           resumed_from=self.start_epoch - 1, continuation=self.continuation.message())
        if self.progress:
            self.progress("end", {"run_id": self.run_id, "status": status, "detail": detail})
        return result

    def _failure(self, err: Exception) -> tuple[str, str]:
        if _is_oom(err):
            bs = self.setup.batch_size if self.setup else self.cfg.batch_size
            return "oom", oom_detail(bs, str(err))
        return "failed", "".join(traceback.format_exception_only(type(err), err)).strip()[:2000]

    def _start(self, data_dir: str | Path | None, dataset: Dataset | None) -> float | None:
        """Build the run, record what it runs on, restore its last checkpoint; the best value so far."""
        cfg, store = self.cfg, self.store
        setup = self.setup = build(cfg, data_dir, dataset)
        ds = setup.dataset
        if cfg.eval_every_steps:
            check_step_evals(cfg.eval_every_steps, cfg.epochs, len(setup.train_loader))
            self.evals = StepEvals(setup, cfg.eval_every_steps)
        store.update_run(
            self.run_id, data_source=ds.source, data_checksum=ds.checksum, params=setup.params, flops=setup.flops,
            batch_size_used=setup.batch_size, device=str(setup.device),
            # the class names and set sizes travel with the run's environment: reports label classes
            # by name and compare batch sizes at equal steps
            env_json=json.dumps({**environment(setup.device), "classes": list(ds.classes),
                                 "n_train": len(ds.y_train), "steps_per_epoch": len(setup.train_loader)}),
        )
        best_value = None
        if store.last_epoch(self.run_id) == 0:  # a longer run of a completed one goes on from its end
            self.continuation = continue_shorter(store, cfg, self.run_id, batch_size=setup.batch_size,
                                                 num_classes=ds.num_classes)
        ckpt = store.load_checkpoint(self.run_id, "last")
        if ckpt is not None:
            done, blob = ckpt
            state = _from_bytes(blob)
            setup.model.load_state_dict(state["model"])
            setup.optimizer.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"])
            best_value = state.get("best_value")
            if self.evals is not None:
                self.evals.restore(state.get("step_window"))
            self.start_epoch = done + 1
        if self.cfg.early_stop is not None:
            self.metric_history = [row.get(self.cfg.stop_metric()) for row in store.epochs(self.run_id)]
        if self.progress:
            self.progress("start", {
                "run_id": self.run_id, "label": self.label, "resumed_from": self.start_epoch - 1,
                "continuation": self.continuation.message(),
                "epochs": cfg.epochs, "params": setup.params, "flops": setup.flops, "device": str(setup.device),
                "batch_size": setup.batch_size, "dataset": ds.name, "source": ds.source, "checksum": ds.checksum,
                "n_train": len(ds.y_train), "n_val": None if ds.y_val is None else len(ds.y_val),
                "n_test": len(ds.y_test), "model": cfg.model.name, "notes": list(ds.notes),
            })
        return best_value

    def _epochs(self, best_value: float | None) -> None:
        """Train the epochs left, committing each row with its checkpoints."""
        setup, metric = self.setup, self.cfg.best_metric
        assert setup is not None
        for epoch in range(self.start_epoch, self.cfg.epochs + 1):
            if self._stop_early(epoch - 1):  # also when a killed run had already met the rule
                return
            reset_peak_memory(setup.device)
            t0 = time.perf_counter()
            train = train_epoch(setup, epoch, self.progress, self.evals)
            if setup.device.type == "cuda":
                torch.cuda.synchronize(setup.device)
            row = epoch_row(setup, epoch, train, time.perf_counter() - t0)
            row["epoch_time_s"] = time.perf_counter() - t0
            best_blob = None
            if _is_better(metric, row.get(metric), best_value):
                best_value = row[metric]
                best_blob = _to_bytes({"model": setup.model.state_dict(), "epoch": epoch, metric: best_value})
            steps = self.evals.rows if self.evals is not None else []
            last_blob = _to_bytes({
                "model": setup.model.state_dict(), "optimizer": setup.optimizer.state_dict(),
                "rng": _rng_state(), "epoch": epoch, "best_value": best_value,
                **({"step_window": self.evals.window()} if self.evals is not None else {}),
            })
            elapsed = time.perf_counter() - self.t_start
            self.store.commit_epoch(self.run_id, epoch, row, last_blob, best_blob,
                                    add_wall_time_s=elapsed - self.accounted, steps=steps)
            self.accounted = elapsed
            self.rows.append({"epoch": epoch, **row})
            if self.progress:
                self.progress("epoch", {"run_id": self.run_id, "epoch": epoch, "row": row, "steps": steps})
            if self.cfg.early_stop is not None:
                self.metric_history.append(row.get(self.cfg.stop_metric()))

    def _stop_early(self, done: int) -> bool:
        """Whether early stopping ends the run after epoch ``done`` (sets ``self.stopped``)."""
        es = self.cfg.early_stop
        if es is None or done < 1:
            return False
        best = stop_after(self.metric_history[:done], self.cfg.stop_metric(), es.patience, es.min_delta)
        if best is not None:
            self.stopped = (done, best)
        return best is not None
