"""Study throughput on the CPU: one worker using every core against one single-threaded worker per core.

Runs the same small study (4 runs) twice through ``run_study``, into fresh stores, and prints the
wall time of each layout and their ratio. This is the measurement behind ``default_workers``:

    SWEEPLAB_CIFAR10=../shared/data/cifar10-jpeg.tar.gz .venv/bin/python benchmarks/workers.py
    .venv/bin/python benchmarks/workers.py --model tutorial_cnn --dataset cifar10 --batch-size 64
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sweeplab.study import parse_study
from sweeplab.study.execute import run_study

STUDY = """
[study]
name = "workers-bench"
seeds = 4
[baseline]
epochs = {epochs}
batch_size = {batch_size}
device = "cpu"
data = {{ dataset = "{dataset}", train_subset = {n_train}, test_subset = 1000 }}
model = {{ name = "{model}" }}
optim = {{ name = "sgd", lr = 0.01, momentum = 0.9 }}
"""


def timed(spec, workers: int, threads: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run_study(spec, Path(d) / "sweeplab.db", workers=workers, threads=threads)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tutorial_cnn")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[4, 64, 256])
    ap.add_argument("--train-examples", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"{args.model} on {args.dataset}, 4 runs x {args.epochs} epoch(s) x {args.train_examples} examples, "
          f"{cores} cores")
    print(f"{'batch':>5} {'1 worker x ' + str(cores) + ' threads':>22} {str(cores) + ' workers x 1 thread':>20} "
          f"{'speed-up':>9}")
    for bs in args.batch_size:
        spec = parse_study(STUDY.format(epochs=args.epochs, batch_size=bs, dataset=args.dataset,
                                        n_train=args.train_examples, model=args.model))
        one = timed(spec, 1, cores)
        many = timed(spec, cores, 1)
        print(f"{bs:>5} {one:>21.1f}s {many:>19.1f}s {one / many:>8.2f}x")


if __name__ == "__main__":
    main()
