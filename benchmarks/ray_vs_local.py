"""A study on a local Ray against the local executor, on the same cores: Ray's overhead per run.

Trains the same study of 8 runs (digits, mlp, batch 2: many steps per epoch, every epoch committed
with its checkpoint) into fresh stores: with the local executor (one single-threaded worker
process per core) and with ``--executor ray`` on a Ray started here with as many CPUs (one per
run), alternating for ``--repeat`` rounds. Prints the fastest wall time of each, the whole-study
ratio, Ray's overhead per run in seconds (the
extra time of each wave of runs divided over the runs of the wave), Ray's start-up separately,
and what a cluster of ``--nodes`` such machines would take, computed from those figures.

    .venv/bin/python benchmarks/ray_vs_local.py               # 8 runs of about a minute each
    .venv/bin/python benchmarks/ray_vs_local.py --epochs 8    # scaled down: about 25 s each

Ray's processes listen on loopback only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, set before import).
"""

from __future__ import annotations

import argparse
import math
import statistics
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from sweeplab.executor.ray_executor import RayOptions  # noqa: E402
from sweeplab.study import parse_study  # noqa: E402
from sweeplab.study.execute import run_study  # noqa: E402

STUDY = """
[study]
name = "ray-bench"
seeds = {seeds}
[baseline]
epochs = {epochs}
batch_size = {batch_size}
device = "cpu"
data = {{ dataset = "digits" }}
model = {{ name = "mlp", hidden = [64] }}
optim = {{ name = "sgd", lr = 0.01, momentum = 0.9 }}
"""


def timed(spec, **kwargs) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        results = run_study(spec, Path(d) / "sweeplab.db", **kwargs)
        elapsed = time.perf_counter() - t0
    assert all(r["status"] == "completed" for r in results.values()), results
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=20, help="epochs per run (20: about a minute at batch 2 here)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=2, help="alternating rounds; the fastest of each is used")
    ap.add_argument("--nodes", type=int, default=4, help="cluster size for the computed estimate")
    args = ap.parse_args()
    spec = parse_study(STUDY.format(seeds=args.runs, epochs=args.epochs, batch_size=args.batch_size))
    slots = args.cores
    print(f"{args.runs} runs x {args.epochs} epochs (digits, mlp [64], batch {args.batch_size}), {slots} cores")

    import ray

    locals_, rays, startups = [], [], []
    for i in range(args.repeat):  # alternating, so a busy moment of a shared machine hits both
        locals_.append(timed(spec, workers=slots, threads=1))
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=slots, include_dashboard=False, log_to_driver=False)
        startups.append(time.perf_counter() - t0)
        try:
            rays.append(timed(spec, ray=RayOptions(num_cpus=1)))
        finally:
            ray.shutdown()
        print(f"round {i + 1}: local {locals_[-1]:.1f} s, Ray {rays[-1]:.1f} s (+ {startups[-1]:.1f} s start-up)")
    # The fastest round is the best estimate on a shared machine (other work only slows a round down);
    # the medians say how much the rounds varied.
    print(f"medians: local {statistics.median(locals_):.1f} s, Ray {statistics.median(rays):.1f} s")
    local, on_ray, startup = (min(v) for v in (locals_, rays, startups))
    waves = math.ceil(args.runs / slots)
    per_run_local = local / waves  # one run's wall time, as its wave takes it
    overhead = (on_ray - local) / waves  # extra seconds of each run on Ray
    print(f"fastest of {args.repeat} rounds")
    print(f"local executor ({slots} workers x 1 thread): {local:8.1f} s  ({per_run_local:.1f} s per run)")
    print(f"Ray, local cluster of {slots} CPUs:           {on_ray:8.1f} s  (+ {startup:.1f} s to start Ray)")
    print(f"whole-study ratio Ray / local:      {on_ray / local:.3f}  ({(on_ray + startup) / local:.3f} with start-up)")
    print(f"Ray overhead per run:               {overhead:+.2f} s")
    nodes_waves = math.ceil(args.runs / (slots * args.nodes))
    charged = max(0.0, overhead)  # a negative overhead is the machine's noise: credit nothing for it
    estimate = nodes_waves * (per_run_local + charged) + startup
    print(f"computed, {args.nodes} nodes x {slots} cores: {nodes_waves} wave(s) x ({per_run_local:.1f} + {charged:.2f}) s "
          f"+ {startup:.1f} s start-up = {estimate:.1f} s, {local / estimate:.2f}x faster than the local executor "
          "(computed from the figures above, not measured; assumes the data is on every node)")


if __name__ == "__main__":
    main()
