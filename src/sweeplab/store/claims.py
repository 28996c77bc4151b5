"""Sharing a study's runs between processes: claim a run before training it, or leave it.

Two ``sweeplab run`` of one study on one store (or a rerun racing workers that outlived their
driver) must each train a run only after winning it: ``claim`` moves it to ``running`` under this
process's worker id atomically, and a run another live worker holds is left to that worker.
"""

from __future__ import annotations

from sweeplab.store.records import RunRecord
from sweeplab.store.store import Store, default_worker_id

#: Statuses a process may take a run from: never started, or stopped without a final result.
CLAIMABLE_STATUSES: tuple[str, ...] = ("pending", "interrupted", "failed", "oom")


def claim(store: Store, run_id: str, worker: str | None = None) -> tuple[bool, RunRecord]:
    """Claim ``run_id`` for ``worker`` (this process by default); returns (won, current row).

    A run left ``running`` by a dead worker on this host is reset first, so it can be taken over;
    one held by a live worker, or finished, is not claimed.
    """
    worker = worker or default_worker_id()
    if store.claim_run(run_id, worker=worker, from_statuses=CLAIMABLE_STATUSES):
        return True, store.get_run(run_id)
    run = store.get_run(run_id)
    if run.status == "running" and store.reset_stale_running():
        if store.claim_run(run_id, worker=worker, from_statuses=CLAIMABLE_STATUSES):
            return True, store.get_run(run_id)
        run = store.get_run(run_id)
    return False, run
