"""How the data reaches runs on Ray: every worker loads it itself, or the driver puts it in Ray's
object store once (``--ray-data worker`` against ``--ray-data object-store``).

Trains the same study (CIFAR-10 from the JPEG archive, ``--runs`` runs of one epoch, mlp [32],
one CPU each) on a Ray started here with ``--cores`` CPUs, in four ways:

- ``worker, warm cache``: each worker loads the archive through the decoded-array cache, already
  filled (the same path and cache on every node);
- ``worker, cold cache``: the cache starts empty, so the workers decode the JPEGs themselves (a
  fresh node: each node decodes once);
- ``object-store, warm`` / ``cold``: the driver loads it (from the filled cache, or decoding it
  once), ``ray.put``s the arrays once and every task reads them without a copy.

For each, alternating for ``--repeat`` rounds, it prints the whole study's wall time (the driver's loading included) and, per run, the
seconds from the task starting on its worker to fit's ``start`` (data ready, model built) and to
its first epoch, then the ratios of the fastest rounds, and checks that every run recorded the same data checksum and source.

    SWEEPLAB_CIFAR10=/work/shared/data/cifar10-jpeg.tar.gz .venv/bin/python benchmarks/ray_data.py

Ray's processes listen on loopback only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, set before import).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from sweeplab.executor.ray_executor import RayOptions  # noqa: E402
from sweeplab.store import Store  # noqa: E402
from sweeplab.study import parse_study  # noqa: E402
from sweeplab.study.execute import run_study  # noqa: E402
from sweeplab.train import task as task_module  # noqa: E402

STUDY = """
[study]
name = "ray-data"
seeds = {runs}
[baseline]
epochs = 1
batch_size = 256
device = "cpu"
data = {{ dataset = "cifar10" }}
model = {{ name = "mlp", hidden = [32] }}
optim = {{ name = "sgd", lr = 0.01, momentum = 0.9 }}
"""


def one_mode(ray, spec, cores: int, cache: Path, share: bool) -> dict:
    """One study on a fresh Ray whose processes use ``cache`` as the decoded-array cache."""
    os.environ["SWEEPLAB_CACHE"] = str(cache)  # the driver's and (inherited) every worker's
    task_module._dataset_memo.clear()  # the driver loads afresh, as a new `sweeplab run` does
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    marks: dict[str, dict[str, float]] = {}

    def on_event(run_id, event, info):
        if event in ("worker", "start", "epoch"):
            marks.setdefault(run_id, {}).setdefault(event, time.perf_counter())

    try:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            results = run_study(spec, Path(d) / "sweeplab.db", ray=RayOptions(num_cpus=1, share_data=share),
                                on_event=on_event)
            wall = time.perf_counter() - t0
            assert all(r["status"] == "completed" for r in results.values()), results
            with Store(Path(d) / "sweeplab.db", readonly=True) as store:
                data = {(r.data_checksum, r.data_source) for r in store.list_runs()}
    finally:
        ray.shutdown()
    ready = [m["start"] - m["worker"] for m in marks.values()]
    first = [m["epoch"] - m["worker"] for m in marks.values()]
    return {"wall": wall, "ready": ready, "first": first, "data": data}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=2, help="alternating rounds; the fastest study of each way is kept")
    args = ap.parse_args()
    if not os.environ.get("SWEEPLAB_CIFAR10"):
        raise SystemExit("set SWEEPLAB_CIFAR10 to the CIFAR-10 JPEG archive (cifar10-jpeg.tar.gz)")
    spec = parse_study(STUDY.format(runs=args.runs))
    import ray

    print(f"{args.runs} runs x 1 epoch (CIFAR-10 50,000 + 10,000 images, mlp [32]), Ray with {args.cores} CPUs, "
          "one per run")
    with tempfile.TemporaryDirectory() as root:
        warm = Path(root) / "warm"
        os.environ["SWEEPLAB_CACHE"] = str(warm)
        t0 = time.perf_counter()
        task_module.dataset_for(spec.runs[0].config, None)  # fills the warm cache: one decode
        print(f"decoding the archive once (fills the cache): {time.perf_counter() - t0:.1f} s")
        modes = [("worker, warm cache", warm, False), ("object-store, warm cache", warm, True),
                 ("worker, cold cache", "cold", False), ("object-store, cold cache", "cold", True)]
        best: dict[str, dict] = {}
        checks = set()
        for i in range(args.repeat):  # alternating, so a busy moment of a shared machine hits every way
            for name, cache, share in modes:
                cache = Path(tempfile.mkdtemp(dir=root)) if cache == "cold" else cache  # empty each time
                r = one_mode(ray, spec, args.cores, cache, share)
                checks |= r["data"]
                print(f"round {i + 1}: {name:26s} study {r['wall']:6.1f} s | per run: data ready "
                      f"{statistics.mean(r['ready']):5.2f} s (max {max(r['ready']):5.2f}), first epoch "
                      f"{statistics.mean(r['first']):5.2f} s (max {max(r['first']):5.2f})")
                if name not in best or r["wall"] < best[name]["wall"]:
                    best[name] = r
    assert len(checks) == 1, f"runs recorded different data: {checks}"
    print(f"every run recorded the same data: {next(iter(checks))}")
    by = best
    print(f"fastest of {args.repeat} rounds:")
    for temp in ("warm", "cold"):
        w, o = by[f"worker, {temp} cache"], by[f"object-store, {temp} cache"]
        print(f"{temp}: object-store / worker: study {o['wall'] / w['wall']:.2f}, "
              f"first epoch {statistics.mean(o['first']) / statistics.mean(w['first']):.2f}")


if __name__ == "__main__":
    main()
