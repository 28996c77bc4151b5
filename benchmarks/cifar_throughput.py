"""Training throughput on CIFAR-10: sweeplab's path against the conventional PyTorch pipeline.

Both train the same ``tutorial_cnn`` with the same optimizer (SGD lr 0.001, momentum 0.9) and batch
size on the CPU, in this one process, one after the other:

- conventional: ``torchvision.datasets.ImageFolder`` over the extracted JPEGs,
  ``ToTensor + Normalize``, ``DataLoader(shuffle=True, num_workers=2)``;
- sweeplab: the decoded-once cache, the device loader and ``train_epoch``.

Each trains on the same number of examples and is then evaluated on the same test images, so the
ratio is at equal work and the accuracies can be compared. Run by hand (not a test):

    SWEEPLAB_CIFAR10=../shared/data/cifar10-jpeg.tar.gz .venv/bin/python benchmarks/cifar_throughput.py
    ... --batch-sizes 4 64 --train-examples 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def extracted(archive: Path) -> Path:
    """The archive unpacked once under the temp dir (ImageFolder needs files)."""
    dest = Path(tempfile.gettempdir()) / f"sweeplab-bench-{archive.stat().st_size}"
    if not (dest / "train").is_dir():
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    roots = [p for p in dest.rglob("train") if p.is_dir()]
    return roots[0].parent


def tutorial_loaders(root: Path, batch_size: int, n_train: int, seed: int, workers: int = 2):
    """The tutorial's input pipeline: ImageFolder over the JPEGs, ``ToTensor + Normalize``,
    ``DataLoader(shuffle=True, num_workers=2)`` over ``n_train`` random training images; the test
    split in batches of 1000. Returns ``(train_loader, test_loader)``."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606))])
    train = datasets.ImageFolder(root / "train", transform=tf)
    test = datasets.ImageFolder(root / "test", transform=tf)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=g)[:n_train].tolist()
    loader = DataLoader(Subset(train, idx), batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=False)
    return loader, DataLoader(test, batch_size=1000, num_workers=workers)


def train_and_test(model: torch.nn.Module, loader, test_loader) -> tuple[float, float]:
    """The tutorial's loop: one epoch of SGD (lr 0.001, momentum 0.9), then test accuracy.
    Returns ``(training images/s, test accuracy)``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    model.train()
    t0 = time.perf_counter()
    seen = 0
    for x, y in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        seen += len(y)
    rate = seen / (time.perf_counter() - t0)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return rate, correct / total


def conventional(root: Path, batch_size: int, n_train: int, threads: int, seed: int) -> tuple[float, float]:
    from sweeplab.models import create_model

    loader, test_loader = tutorial_loaders(root, batch_size, n_train, seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = create_model("tutorial_cnn", input_shape=(3, 32, 32), num_classes=10)
    return train_and_test(model, loader, test_loader)


def sweeplab_path(batch_size: int, n_train: int, threads: int | None, seed: int) -> tuple[float, float, int]:
    from sweeplab.resolve import build_run_config
    from sweeplab.train.epoch import evaluate, train_epoch
    from sweeplab.train.setup import build

    cfg = build_run_config({
        "epochs": 1, "batch_size": batch_size, "device": "cpu", "seed": seed, "threads": threads,
        "data": {"dataset": "cifar10", "train_subset": n_train},
        "model": {"name": "tutorial_cnn"}, "optim": {"name": "sgd", "lr": 0.001, "momentum": 0.9},
    })
    setup = build(cfg)
    t0 = time.perf_counter()
    out = train_epoch(setup, 1)
    rate = out["train_samples"] / (time.perf_counter() - t0)
    acc = evaluate(setup, setup.eval_loaders["test"])["acc"]
    return rate, acc, torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 64])
    ap.add_argument("--train-examples", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternating measurements per pipeline; the median is reported")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    archive = Path(os.environ.get("SWEEPLAB_CIFAR10", "../shared/data/cifar10-jpeg.tar.gz"))
    os.environ["SWEEPLAB_CIFAR10"] = str(archive)
    root = extracted(archive)
    cores = os.cpu_count() or 1
    print(f"tutorial_cnn, CPU ({cores} cores), {args.train_examples} training examples per measurement, "
          f"median of {args.repeats} alternating measurements [min-max]")
    print(f"{'batch':>5} {'conventional img/s':>26} {'acc':>6} {'sweeplab img/s':>26} {'acc':>6} "
          f"{'threads':>7} {'ratio':>6}")
    for bs in args.batch_sizes:
        conv_rates, ours_rates = [], []
        for _ in range(args.repeats):  # alternating, so a slow spell of the machine hits both
            conv_rate, conv_acc = conventional(root, bs, args.train_examples, cores, args.seed)
            ours_rate, ours_acc, threads = sweeplab_path(bs, args.train_examples, None, args.seed)
            conv_rates.append(conv_rate)
            ours_rates.append(ours_rate)
        conv, ours = statistics.median(conv_rates), statistics.median(ours_rates)
        print(f"{bs:>5} {_spread(conv, conv_rates):>26} {conv_acc:>6.1%} {_spread(ours, ours_rates):>26} "
              f"{ours_acc:>6.1%} {threads:>7} {ours / conv:>5.1f}x")


def _spread(median: float, values: list[float]) -> str:
    return f"{median:,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


if __name__ == "__main__":
    main()
