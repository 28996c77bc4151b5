"""Whole processes: ``sweeplab train`` against the tutorial loop and PyTorch Lightning, start-up included.

Each job is one fresh process that trains the tutorial CNN for one epoch on the same number of
CIFAR-10 training images (batch 4, SGD lr 0.001 momentum 0.9, CPU) and then tests on the 10,000
test images:

- conventional: the PyTorch tutorial's loop (``ImageFolder`` over the extracted JPEGs,
  ``ToTensor + Normalize``, ``DataLoader(num_workers=2)``; ``benchmarks/cifar_throughput.py``);
- lightning: the same net, data and optimizer as a ``LightningModule`` run by ``Trainer.fit``
  (no logger, checkpointing, progress bar or model summary: Lightning at its leanest);
- sweeplab: ``sweeplab train`` into a fresh store (``--fresh``).

The jobs alternate, so a slow spell of the machine hits all of them; wall times and in-loop
images/s are medians of ``--repeats``. Then a 200-image ``sweeplab train`` against
``python -c "import torch"`` (the goal: within 1.5 s of it), and the per-run overhead inside a
study worker: a study of ``--worker-runs`` digits MLP runs in one worker, where a run's overhead is
the time between the end of the previous run and its own end minus its epochs' time
(``epoch_time_s``: training and evaluation). Lightning is a benchmark-only dependency
(``pip install -r benchmarks/requirements.txt``). Run by hand (not a test):

    SWEEPLAB_CIFAR10=../shared/data/cifar10-jpeg.tar.gz .venv/bin/python benchmarks/fast_start.py
    ... --skip-lightning --train-examples 2000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _tutorial_net():
    """The net of PyTorch's "Training a classifier" tutorial, as the tutorial writes it."""
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.pool, self.conv2 = nn.Conv2d(3, 6, 5), nn.MaxPool2d(2, 2), nn.Conv2d(6, 16, 5)
            self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, x):  # noqa: ANN001, ANN202
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = x.flatten(1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    return Net()


def job_conventional(root: Path, n_train: int, batch_size: int, seed: int) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    import torch
    from cifar_throughput import tutorial_loaders, train_and_test

    loader, test_loader = tutorial_loaders(root, batch_size, n_train, seed)
    torch.manual_seed(seed)
    rate, acc = train_and_test(_tutorial_net(), loader, test_loader)
    return {"images_per_s": rate, "acc": acc}


def job_lightning(root: Path, n_train: int, batch_size: int, seed: int) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    import lightning as L
    import torch
    import torch.nn.functional as F
    from cifar_throughput import tutorial_loaders

    class Lit(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.correct, self.total = _tutorial_net(), 0, 0

        def training_step(self, batch, _i):  # noqa: ANN001, ANN202
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def validation_step(self, batch, _i):  # noqa: ANN001, ANN202
            x, y = batch
            self.correct += (self.net(x).argmax(1) == y).sum().item()
            self.total += len(y)

        def configure_optimizers(self):  # noqa: ANN202
            return torch.optim.SGD(self.parameters(), lr=0.001, momentum=0.9)

    class InLoop(L.Callback):  # training images/s from the epoch's start to its last step
        t0 = t1 = 0.0
        seen = 0

        def on_train_epoch_start(self, trainer, module):  # noqa: ANN001, ANN202
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):  # noqa: ANN001, ANN202
            self.t1, self.seen = time.perf_counter(), self.seen + len(batch[1])

    loader, test_loader = tutorial_loaders(root, batch_size, n_train, seed)
    torch.manual_seed(seed)
    lit, timer = Lit(), InLoop()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[timer])
    trainer.fit(lit, loader, test_loader)
    return {"images_per_s": timer.seen / (timer.t1 - timer.t0), "acc": lit.correct / max(1, lit.total)}


def _sweeplab_cmd() -> list[str]:
    script = Path(sys.executable).with_name("sweeplab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sweeplab"]


def sweeplab_train(n_train: int, batch_size: int, seed: int) -> tuple[float, dict[str, float]]:
    """Wall time of one ``sweeplab train`` process and its stored in-loop images/s and accuracy."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [*_sweeplab_cmd(), "train", "--dataset", "cifar10", "--model", "tutorial_cnn", "--epochs", "1",
               "--batch-size", str(batch_size), "--optimizer", "sgd", "--lr", "0.001", "--seed", str(seed),
               "--set", "optim.momentum=0.9", "--set", f"data.train_subset={n_train}", "--device", "cpu",
               "--fresh", "--out", out]
        wall = _timed(cmd)
        with sqlite3.connect(Path(out) / "sweeplab.db") as db:
            rate, acc = db.execute("SELECT train_images_per_s, test_acc FROM epochs").fetchone()
    return wall, {"images_per_s": rate, "acc": acc}


#: CPU seconds (user + sys) of the last process :func:`_timed` ran: less sensitive to a busy machine.
LAST_CPU = [0.0]


def _timed(cmd: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall


def job_process(job: str, root: Path, n_train: int, batch_size: int, seed: int) -> tuple[float, dict[str, float]]:
    """Run ``job`` in a fresh process of this script; its wall time and what it printed."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", job, "--root", str(root),
           "--train-examples", str(n_train), "--batch-size", str(batch_size), "--seed", str(seed)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def _med(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} [{min(values):.2f}-{max(values):.2f}]"


def whole_process(args: argparse.Namespace, root: Path) -> None:
    jobs = ["conventional", *([] if args.skip_lightning else ["lightning"]), "sweeplab"]
    walls: dict[str, list[float]] = {j: [] for j in jobs}
    rates: dict[str, list[float]] = {j: [] for j in jobs}
    accs: dict[str, float] = {}
    for _ in range(args.repeats):  # alternating
        for job in jobs:
            if job == "sweeplab":
                wall, info = sweeplab_train(args.train_examples, args.batch_size, args.seed)
            else:
                wall, info = job_process(job, root, args.train_examples, args.batch_size, args.seed)
            walls[job].append(wall)
            rates[job].append(info["images_per_s"])
            accs[job] = info["acc"]
            print(f"  {job}: {wall:.2f} s, {info['images_per_s']:,.0f} img/s in the loop", flush=True)
    print(f"\n{args.train_examples:,} CIFAR-10 images, tutorial CNN, batch {args.batch_size}, 1 epoch + test, "
          f"CPU ({os.cpu_count()} cores), median of {args.repeats} alternating whole processes [min-max]")
    print(f"{'':13} {'wall s':>20} {'in-loop img/s':>22} {'acc':>6}")
    for job in jobs:
        r = rates[job]
        print(f"{job:13} {_med(walls[job]):>20} {statistics.median(r):9,.0f} [{min(r):,.0f}-{max(r):,.0f}]"
              f" {accs[job]:>6.1%}")
    ours_w, ours_r = walls["sweeplab"], rates["sweeplab"]
    for job in jobs[:-1]:
        pairwise = statistics.median(a / b for a, b in zip(walls[job], ours_w, strict=True))
        print(f"sweeplab vs {job}: whole process {statistics.median(walls[job]) / statistics.median(ours_w):.2f}x "
              f"(ratio of medians; median of pairwise ratios {pairwise:.2f}x), "
              f"in-loop {statistics.median(ours_r) / statistics.median(rates[job]):.2f}x")


def small_run(args: argparse.Namespace) -> None:
    base, ours, base_cpu, ours_cpu = [], [], [], []
    for _ in range(args.repeats):
        base.append(_timed([sys.executable, "-c", "import torch"]))
        base_cpu.append(LAST_CPU[0])
        ours.append(sweeplab_train(200, args.batch_size, args.seed)[0])
        ours_cpu.append(LAST_CPU[0])
    gap = statistics.median(o - b for o, b in zip(ours, base, strict=True))
    cpu_gap = statistics.median(o - b for o, b in zip(ours_cpu, base_cpu, strict=True))
    print(f"\n200-image sweeplab train {_med(ours)} s, python -c 'import torch' {_med(base)} s: "
          f"{gap:.2f} s more (median of pairwise differences; goal <= 1.5 s), "
          f"ratio {statistics.median(ours) / statistics.median(base):.2f}x; CPU time {_med(ours_cpu)} s "
          f"against {_med(base_cpu)} s: {cpu_gap:.2f} s more")


WORKER_STUDY = """
[study]
name = "per-run-overhead"
seeds = {runs}
[baseline]
epochs = 2
batch_size = 32
device = "cpu"
data = {{ dataset = "digits" }}
model = {{ name = "mlp", hidden = [16] }}
"""


def worker_overhead(args: argparse.Namespace) -> None:
    from sweeplab.study import parse_study
    from sweeplab.study.execute import run_study

    spec = parse_study(WORKER_STUDY.format(runs=args.worker_runs))
    ends: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "sweeplab.db"
        t0 = time.perf_counter()
        run_study(spec, db, workers=1, threads=1,
                  on_event=lambda key, event, info: ends.append((time.perf_counter(), key)) if event == "end" else None)
        wall = time.perf_counter() - t0
        with sqlite3.connect(db) as con:
            epochs = dict(con.execute("SELECT run_id, SUM(epoch_time_s) FROM epochs GROUP BY run_id").fetchall())
    # The first run pays the worker's imports; every later one is a run in a warm worker.
    overheads = [(t - prev) - epochs[key] for (prev, _), (t, key) in zip(ends, ends[1:])]
    print(f"\nstudy of {len(ends)} digits MLP runs (2 epochs each) in one worker: {wall:.2f} s; per-run overhead "
          f"after the first run (wall minus the run's epochs): median {statistics.median(overheads):.3f} s "
          f"[{min(overheads):.3f}-{max(overheads):.3f}] (goal < 0.2 s); epochs {statistics.median(epochs.values()):.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-examples", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker-runs", type=int, default=12)
    ap.add_argument("--skip-lightning", action="store_true")
    ap.add_argument("--only", choices=["whole", "small", "worker"], nargs="+", default=["whole", "small", "worker"])
    ap.add_argument("--job", choices=["conventional", "lightning"], help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:  # a child process: one job, its numbers as the last line of stdout
        job = job_conventional if args.job == "conventional" else job_lightning
        print(json.dumps(job(args.root, args.train_examples, args.batch_size, args.seed)))
        return
    archive = Path(os.environ.setdefault("SWEEPLAB_CIFAR10", "../shared/data/cifar10-jpeg.tar.gz"))
    sys.path.insert(0, str(HERE))
    from cifar_throughput import extracted

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start")
    if "whole" in args.only:
        whole_process(args, extracted(archive))
    if "small" in args.only:
        small_run(args)
    if "worker" in args.only:
        worker_overhead(args)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
