"""How many workers, and how many threads each, for a device.

Measured on the 2-core dev machine (benchmarks/workers.py): small models train faster in total
as one single-threaded run per core than as one run using both cores, because their per-step
work is too small to split across threads. A GPU runs one worker: several processes on one GPU
contend for it, and the fast path for many small models is batching them, not processes.
"""

from __future__ import annotations

import os


def default_workers(device_type: str, n_runs: int, cpu_count: int | None = None) -> tuple[int, int | None]:
    """(workers, threads per worker) for ``n_runs`` pending runs on ``device_type``."""
    if device_type != "cpu":
        return 1, None
    cores = cpu_count or os.cpu_count() or 1
    workers = max(1, min(cores, n_runs))
    return workers, max(1, cores // workers)
