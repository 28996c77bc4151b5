"""The device loader: the dataset lives on the device; shuffling, batching, normalisation and
per-sample augmentation are batched tensor ops there (the airbench ``CifarLoader`` approach).

Reproducibility and resume: an epoch's order and augmentation parameters come from a generator
seeded by ``(seed, epoch)`` alone, so epoch ``e`` yields the same batches whatever ran before it,
in this process or another. The loader holds no state beyond the epoch number
(:meth:`DeviceLoader.set_epoch`); iterating twice without changing it repeats the epoch.

Speed: per-call overhead, not arithmetic, dominates small batches (at batch 4 a gather, a
conversion and a normalisation cost more than the data they touch). So the loader prepares a
whole chunk of batches at once (gather, augment, normalise: a few large ops) and yields slices
of it, which are views and cost about a microsecond each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..config.schema import AugmentConfig
from ..errors import DataError
from . import augment as aug

# Bytes of prepared (float) input per chunk: ~1,000 CIFAR images on CPU, most of a CIFAR epoch on
# accelerators. On the CPU, chunks past ~30 MB are fresh mmap()s that page-fault on every touch:
# measured (benchmarks/loader_chunks.py, CIFAR-sized uint8, 2 cores) 1,000-image chunks gave
# 1.4-3x the images/s of 5,000-image ones at batch 4, 64 and 128, with and without augmentation,
# and 256-image chunks lose again once augmentation runs (more, smaller ops).
_CHUNK_BYTES = {"cpu": 12 << 20, "default": 512 << 20}
_MASK64 = (1 << 64) - 1


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed from ``(seed, epoch)``: nearby pairs give unrelated streams."""
    state = np.random.SeedSequence([seed & _MASK64, epoch & _MASK64]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class DeviceLoader:
    """Batches of ``(x, y)`` from tensors held on ``device``.

    ``x`` is uint8 NCHW images, float (N, D) features or int64 (N, L) sequences; ``y`` int64 labels.
    Batches come out as float32, normalised as ``(x / 255 - mean) / std`` per channel for images
    and ``(x - mean) / std`` per feature for features (only ``x / 255`` for images without
    mean/std); sequences come out unchanged (int64). ``augment`` (images only) applies to every
    epoch; pass ``None`` for evaluation.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        device: str | torch.device = "cpu",
        augment: AugmentConfig | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        drop_last: bool = False,
        chunk_size: int | None = None,
        channels_last: bool = False,
    ):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.device = torch.device(device)
        self.kind = _kind(x)
        self.augment = augment if augment is not None and augment.any() else None
        if self.augment is not None:
            self._check_augment(x, self.augment)
        # Moved once; uint8 images stay uint8 on the device (4x less memory than float).
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        # Image batches in NHWC memory order for channels_last models: converted with the uint8 ->
        # float pass over the whole chunk, so the training step does not copy each batch again.
        self.memory_format = (
            torch.channels_last if channels_last and self.kind == "image" else torch.contiguous_format
        )
        self.epoch = 0
        self._scale, self._shift = self._normaliser(mean, std)
        per_sample = 4 * max(1, int(np.prod(x.shape[1:])))
        budget = _CHUNK_BYTES.get(self.device.type, _CHUNK_BYTES["default"])
        chunk = chunk_size or max(1, budget // per_sample)
        self.chunk_size = max(batch_size, chunk // batch_size * batch_size)  # whole batches per chunk

    # -- public -------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self._generator()
        n, bs = len(self.y), self.batch_size
        order = torch.randperm(n, generator=g, device=g.device).to(self.device) if self.shuffle else None
        stop = n // bs * bs if self.drop_last else n
        for start in range(0, stop, self.chunk_size):
            end = min(start + self.chunk_size, stop)
            if order is None:
                xc, yc, owned = self.x[start:end], self.y[start:end], False  # views
            else:
                idx = order[start:end]
                xc, yc, owned = self.x.index_select(0, idx), self.y.index_select(0, idx), True
            xc = self._prepare(xc, g, owned)
            for s in range(0, end - start, bs):
                yield xc[s : s + bs], yc[s : s + bs]

    # -- internals ----------------------------------------------------------------------------------
    def _generator(self) -> torch.Generator:
        seed = epoch_seed(self.seed, self.epoch)
        try:
            g = torch.Generator(device=self.device)
        except RuntimeError:  # a backend without device generators: draw on the CPU
            g = torch.Generator()
        return g.manual_seed(seed)

    def _prepare(self, x: torch.Tensor, g: torch.Generator, owned: bool) -> torch.Tensor:
        """Augment and normalise one chunk. ``owned``: x is a fresh tensor we may modify."""
        if self.kind == "sequence":
            return x
        if self.augment is not None:
            x0 = x
            x = aug.geometric(x, g, self.augment)
            owned = owned or x is not x0
        if x.dtype != torch.float32 or not x.is_contiguous(memory_format=self.memory_format):
            # uint8 -> float (or float64 features), in the batches' memory order, in one pass
            x, owned = x.to(torch.float32, memory_format=self.memory_format), True
        if self._scale is not None:
            x = x.mul_(self._scale) if owned else x * self._scale
            x = x.add_(self._shift) if self._shift is not None else x
            owned = True
        if self.augment is not None and self.augment.cutout:
            x = aug.cutout(x, g, self.augment.cutout, inplace=owned)
        return x

    def _normaliser(
        self, mean: Sequence[float] | None, std: Sequence[float] | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``x * scale + shift`` equals ``(x / 255 - mean) / std`` (images) or ``(x - mean) / std``."""
        if self.kind == "sequence":
            return None, None
        width = self.x.shape[1]
        shape = (1, width, 1, 1) if self.kind == "image" else (1, width)
        unit = 255.0 if self.kind == "image" else 1.0
        if mean is None or std is None:
            if self.kind == "image":
                return torch.full(shape, 1 / 255.0, device=self.device), None
            return None, None
        m = torch.as_tensor(list(mean), dtype=torch.float64)
        s = torch.as_tensor(list(std), dtype=torch.float64)
        if m.numel() not in (1, width) or s.numel() not in (1, width):
            raise ValueError(f"mean/std need 1 or {width} values, got {m.numel()} and {s.numel()}")
        m, s = m.expand(width), s.expand(width)
        scale = (1.0 / (unit * s)).to(torch.float32).reshape(shape).to(self.device)
        shift = (-m / s).to(torch.float32).reshape(shape).to(self.device)
        return scale, shift

    @staticmethod
    def _check_augment(x: torch.Tensor, cfg: AugmentConfig) -> None:
        if _kind(x) != "image":
            raise DataError("augmentation needs image data; this dataset has none", path="data.augment")
        h, w = x.shape[-2:]
        if cfg.crop_mode == "reflect" and cfg.crop_padding >= min(h, w):
            raise DataError(
                f"reflect padding needs crop_padding < image size ({min(h, w)}), got {cfg.crop_padding}",
                path="data.augment.crop_padding",
            )


def _kind(x: torch.Tensor) -> str:
    if x.dtype == torch.uint8 and x.dim() == 4:
        return "image"
    if x.is_floating_point() and x.dim() == 2:
        return "features"
    if x.dtype == torch.int64 and x.dim() == 2:
        return "sequence"
    raise ValueError(f"x must be uint8 NCHW, float (N, D) or int64 (N, L), got {x.dtype} {tuple(x.shape)}")
