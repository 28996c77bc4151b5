"""Runs of a study that another process on the same store is training: wait for them.

Two ``sweeplab run`` of one study share its runs through the store's claims (``fit`` trains a run
only after claiming it). A process that finds a run held by a live worker of another process
leaves it, and before it returns waits until that run is finished, so that the study is complete
when either process exits. A run the other process gives up (interrupted, or left ``running``
by a worker that died) is handed back to be trained here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sweeplab.executor.local import sigterm_as_interrupt
from sweeplab.store import Store

#: Seconds between looks at the store while waiting for another process's runs.
POLL_S = 1.0

#: Statuses of a run the other process stopped without a result: this process trains it.
TAKE_OVER = ("pending", "interrupted")


def held_elsewhere(results: dict[str, Any]) -> list[str]:
    """The run ids that ``run_task`` left because another process's worker holds them."""
    return [k for k, v in results.items()
            if isinstance(v, dict) and v.get("skipped") and v.get("status") == "running"]


def wait_for_others(store_path: str | Path, run_ids: list[str], *, poll_s: float = POLL_S) -> dict[str, str]:
    """Wait until none of ``run_ids`` is held by a live worker; returns run id -> status then.

    Runs whose worker died (this host) are reset to ``interrupted`` on the way, so they come back
    with a status in ``TAKE_OVER``.
    """
    left = list(dict.fromkeys(run_ids))
    final: dict[str, str] = {}
    with sigterm_as_interrupt(), Store(store_path) as store:
        while left:
            if any(store.get_run(r).status == "running" for r in left):
                store.reset_stale_running()
            for run_id in list(left):
                status = store.get_run(run_id).status
                if status != "running":
                    final[run_id] = status
                    left.remove(run_id)
            if left:
                time.sleep(poll_s)
    return final
