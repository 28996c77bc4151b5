"""Longer runs without starting over: a run about to train from scratch continues a completed
run of the same config with fewer ``epochs``, from that run's last checkpoint.

A run's id hashes its whole config, so ``epochs = 150`` is a run of its own, not the 50-epoch run
made longer. When the store holds a completed run that differs only in ``epochs`` (fewer), and
the schedule does not depend on the total (constant, step, multistep, exponential: each epoch's
learning rate is the same however long the run), the first 50 epochs of a 150-epoch run are
exactly that run's 50. So its epoch rows and checkpoints are copied into the new run (one store
transaction) and training goes on from epoch 51, exactly as a run resumes after a kill: model,
optimizer, RNG state and the best value so far come from the checkpoint, the early-stopping
history from the copied rows, and the loader and schedule are pure functions of seed, epoch and
step. On the CPU the result equals training 150 epochs from scratch, to the last stored digit.

Cosine and one-cycle schedules (warm-up included) are functions of the total number of steps:
there the shorter run's epochs are not the longer run's, and the run trains from scratch, saying
why. A source that stopped early is still ``completed``: continuing it stops again at once, as
the longer run trained from scratch would (early stopping does not depend on ``epochs``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sweeplab.config import RunConfig
from sweeplab.resolve import identity
from sweeplab.store import RunRecord, Store

#: Schedules whose learning rate at a step depends on the run's total length.
TOTAL_DEPENDENT = ("cosine", "onecycle")

#: Metrics a run records only at its own last epoch when it has many classes (see ``epoch_row``).
_LAST_EPOCH_ONLY = ("test_confusion",)
_MANY_CLASSES = 20


@dataclass(frozen=True)
class Continuation:
    """What happened to a run that had no epochs of its own: continued from ``source`` at
    ``epoch``, or (``source`` None) trained from scratch for ``reason`` (None: nothing to continue)."""

    source: str | None = None
    epoch: int = 0
    reason: str | None = None

    def message(self) -> str | None:
        """The line the CLI prints, or None when there is nothing to say."""
        if self.source is not None:
            return f"continued from run {self.source} at epoch {self.epoch}"
        return None if self.reason is None else f"trains from scratch: {self.reason}"


def _family(cfg: RunConfig) -> dict:
    """What two runs must share for one to continue the other: the identity but for ``epochs``."""
    d = identity(cfg)
    d.pop("epochs", None)
    return d


def shorter_source(store: Store, cfg: RunConfig) -> RunRecord | None:
    """The longest completed run in ``store`` whose config equals ``cfg``'s but for fewer epochs."""
    family = _family(cfg)
    for run in store.shorter_runs(cfg.seed, cfg.epochs):
        try:
            other = RunConfig.from_json(run.config_json)
        except ValueError:  # a config an older schema wrote: not comparable
            continue
        if other.epochs < cfg.epochs and _family(other) == family:
            return run
    return None


def total_dependence(cfg: RunConfig) -> str | None:
    """Why ``cfg``'s schedule cannot be continued (it depends on the total epochs), or None."""
    name = cfg.schedule.name
    return f"{name} depends on the total epochs" if name in TOTAL_DEPENDENT else None


def continue_shorter(store: Store, cfg: RunConfig, run_id: str, *, batch_size: int,
                     num_classes: int) -> Continuation:
    """For a claimed run with no epochs: copy in the shorter run it continues, if there is one.

    ``batch_size`` is the one this run trains with (``batch_size = "max"`` may find another than
    the source's); ``num_classes`` decides which of the source's final-epoch metrics to drop.
    """
    source = shorter_source(store, cfg)
    if source is None:
        return Continuation()
    if (reason := total_dependence(cfg)) is not None:
        return Continuation(reason=reason)
    if source.batch_size_used is not None and source.batch_size_used != batch_size:
        return Continuation(reason=f"run {source.id} trained with batch size {source.batch_size_used}, "
                                   f"this run gets {batch_size}")
    drop = _LAST_EPOCH_ONLY if num_classes > _MANY_CLASSES else ()
    copied = store.continue_run(run_id, source.id, drop_from_last=drop)
    return Continuation(source.id, copied) if copied else Continuation()
