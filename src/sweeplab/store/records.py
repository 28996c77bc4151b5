"""Plain value types that go in and out of the run store.

Nothing here speaks SQL: these are the shapes the rest of sweeplab (trainer, executor, report,
dashboard) sees. Rows with a fixed shape are frozen dataclasses; epoch rows, whose metric set is
open-ended, are plain dicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Statuses are sweeplab's vocabulary (sweeplab/vocabulary.py), re-exported as part of the store's API.
from sweeplab.vocabulary import FINAL_STATUSES, RUN_STATUSES, STOPPED_STATUSES  # noqa: F401

#: Metrics with their own column in ``epochs`` (queryable, typed REAL). Any other key of the
#: metrics dict given to ``Store.commit_epoch`` lands in the row's ``extra_json``.
EPOCH_METRIC_COLUMNS: tuple[str, ...] = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "val_loss",
    "val_acc",
    "lr",
    "epoch_time_s",
    "train_images_per_s",
    "peak_mem_mb",
)

#: Metrics of a step row (``Store.commit_epoch(steps=...)``, run option ``eval_every_steps``):
#: ``train_loss`` is the mean training loss over the steps since the previous evaluation, ``lr``
#: the learning rate of the step evaluated after. No other keys: a step row is a fixed shape.
STEP_METRIC_COLUMNS: tuple[str, ...] = ("train_loss", "test_loss", "test_acc", "val_loss", "val_acc", "lr")

#: A JSON document given either already serialised or as a mapping the store serialises.
JsonLike = str | Mapping[str, Any]


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``: everything known about one training run.

    ``id`` is the run identity computed by the caller (a hash of the resolved canonical config,
    seed included), so two arms or two studies that resolve to the same config share one run.
    Timestamps are ISO-8601 UTC strings.
    """

    id: str
    config_json: str
    seed: int
    label: str | None
    status: str
    status_detail: str | None
    data_source: str | None
    data_checksum: str | None
    env_json: str | None
    device: str | None
    params: int | None
    flops: float | None
    """Forward FLOPs per example."""
    batch_size_used: int | None
    """Batch size actually trained with (smaller than configured after an OOM fallback)."""
    epochs_planned: int | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    wall_time_s: float
    """Wall time accumulated over every session that worked on the run (resumes add up)."""
    worker: str | None
    """``host:pid`` of the process that last claimed the run (see ``default_worker_id``)."""
    heartbeat_at: str | None
    """Last time the owning worker showed signs of life (claim, epoch commit, heartbeat)."""
    epochs_done: int = 0
    """Highest committed epoch (0 if none). Computed from ``epochs``, not a column."""
    continued_from: str | None = None
    """The run this one continued (same config but fewer ``epochs``): its epoch rows and last
    checkpoint were copied in, and training went on from there (``Store.continue_run``)."""
    continued_epochs: int | None = None
    """How many epochs came from ``continued_from`` (computed from that run's rows; None when it
    is not a continuation, or its source has since been forgotten)."""

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config, parsed."""
        return json.loads(self.config_json)

    @property
    def env(self) -> dict[str, Any]:
        """The recorded environment (library versions, device, host...), parsed; {} if unset."""
        return json.loads(self.env_json) if self.env_json else {}

    # Mapping-style reads, for code that treats rows as dicts (``run["status"]``, exports).
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``run.get("status_detail")``: the field's value, or ``default`` if no such field."""
        return getattr(self, key) if key in self.__dataclass_fields__ else default


@dataclass(frozen=True)
class Arm:
    """One arm of a study: a named set of overrides on the study's base config."""

    name: str
    override_json: JsonLike = "{}"
    description: str = ""


@dataclass(frozen=True)
class Link:
    """Says that ``run_id`` is seed ``seed`` of ``arm`` in a study (input to ``save_study``)."""

    arm: str
    seed: int
    run_id: str
    label: str | None = None


@dataclass(frozen=True)
class StudyRecord:
    """One row of ``studies`` with its arms in order."""

    name: str
    description: str
    spec_json: str
    metric: str | None
    created_at: str
    updated_at: str
    arms: tuple[Arm, ...] = field(default=())
    #: Which version of the study this record describes, how many it has, and whether this one
    #: was made with command-line overrides (``--epochs``, ``--seeds``, ``--set``, ``--smoke``).
    version: int = 1
    versions: int = 1
    variant: bool = False

    @property
    def spec(self) -> dict[str, Any]:
        """The study spec, parsed."""
        return json.loads(self.spec_json)


@dataclass(frozen=True)
class StudyVersion:
    """One saved definition of a study. A study saved with a changed spec gets a new version;
    the earlier ones keep their arms and run links. ``is_default`` marks the one reports and
    exports show unless told otherwise: the most recently saved without overrides, else the
    most recently saved."""

    study: str
    version: int
    spec_hash: str
    variant: bool
    created_at: str
    updated_at: str
    links: int
    is_default: bool


@dataclass(frozen=True)
class StudyRunRecord:
    """One (arm, run) link of a study joined with the run's progress, for tables and dashboards.

    A run shared by two arms appears once per arm.
    """

    study: str
    arm: str
    arm_position: int
    position: int
    label: str | None
    seed: int
    run_id: str
    status: str
    status_detail: str | None
    epochs_planned: int | None
    epochs_done: int
    wall_time_s: float


class Checkpoint(NamedTuple):
    """A stored checkpoint: the epoch it was taken after and the caller's serialised bytes."""

    epoch: int
    data: bytes


@dataclass(frozen=True)
class LrFindRecord:
    """One row of ``lr_finds``: an LR range test of one config and seed (``sweeplab lr-find``).

    ``key`` names the test (its config's identity, seed and sweep settings, and the study and arm
    it was made for), so running the same test again replaces its row with the same values.
    ``curve_json`` holds the learning rates, raw and smoothed losses and the sweep's settings;
    ``suggestion`` is None when no learning rate could be suggested (``detail`` says why).
    """

    id: int
    key: str
    study: str | None
    arm: str | None
    config_json: str
    seed: int
    curve_json: str
    suggestion: float | None
    method: str
    detail: str | None
    created_at: str

    @property
    def curve(self) -> dict[str, Any]:
        """The stored curve, parsed."""
        return json.loads(self.curve_json)
