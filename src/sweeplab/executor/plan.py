"""How many workers, and how many threads each, for a device.

Measured on the 2-core dev machine with ``benchmarks/workers.py`` (tutorial_cnn on CIFAR-10,
4 runs of 20,000 examples): two single-threaded workers beat one worker using both cores by
1.49x at batch 4 (one epoch each) and by 1.13x at batch 64 (three epochs each; with one epoch
the ~5 s start-up of a worker process outweighs the gain). Small models do too little work per
step to split it across threads, and two processes do not contend for a lock. A GPU runs one
worker: processes on one GPU contend for it, and the fast path for many small models is
batching them into one model, not processes.
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
