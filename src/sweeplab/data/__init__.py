"""Datasets as plain tensors, and the device loader that batches and augments them.

Nothing outside this package touches pixels: loaders return a :class:`Dataset` of CPU tensors
(uint8 images, float features, int64 sequences) with its metadata; :class:`DeviceLoader` moves
it to the device once and does shuffling, batching, normalisation and augmentation there.
"""

from .loader import DeviceLoader
from .registry import list_datasets, load_dataset, normalization
from .types import Dataset

__all__ = ["Dataset", "DeviceLoader", "list_datasets", "load_dataset", "normalization"]
