"""Device-loader throughput on the CPU by chunk size (how many images are prepared at once).

The loader gathers, augments and normalises a chunk of batches in a few large ops and yields
slices of it. Chunks that are too small pay per-op overhead; chunks that are too large are fresh
mmap()ed buffers that page-fault on every touch. This prints images/s for CIFAR-sized uint8
images (random pixels: the loader's cost does not depend on them) for several chunk sizes,
batch sizes and augmentations, each relative to the library default in the same run:

    .venv/bin/python benchmarks/loader_chunks.py [--threads 2] [--images 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sweeplab.config.schema import AugmentConfig
from sweeplab.data.loader import DeviceLoader

AUGMENTS = {
    "none": None,
    "crop+flip": AugmentConfig(crop_padding=4, hflip=True),
    "rrc+flip": AugmentConfig(random_resized_crop=True, hflip=True),
}


def rate(loader: DeviceLoader, epochs: int = 3) -> float:
    rates = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        t0, n = time.perf_counter(), 0
        for xb, _ in loader:
            n += len(xb)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 64, 128])
    ap.add_argument("--chunks", type=int, nargs="+", default=[256, 640, 1280, 2560, 5440])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (args.images,))
    norm = {"mean": [0.5] * 3, "std": [0.25] * 3}
    print(f"CIFAR-sized uint8 images, {args.threads} threads; k img/s, and x the default chunk")
    print(f"{'batch':>5} {'augment':>9} {'default':>16} " + " ".join(f"{c:>14}" for c in args.chunks))
    for bs in args.batch_sizes:
        for name, augment in AUGMENTS.items():
            default = DeviceLoader(x, y, batch_size=bs, shuffle=True, augment=augment, **norm)
            base = rate(default)
            cells = []
            for chunk in args.chunks:
                r = rate(DeviceLoader(x, y, batch_size=bs, shuffle=True, augment=augment, chunk_size=chunk, **norm))
                cells.append(f"{r / 1e3:>7,.0f}k {r / base:>4.1f}x")
            print(f"{bs:>5} {name:>9} {base / 1e3:>6,.0f}k ({default.chunk_size:>5}) " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
