"""A dataset the driver put in Ray's object store once, for every run's task to read.

``--executor ray`` by default has the driver load each distinct dataset of the study (as
:func:`~sweeplab.train.task.dataset_for` would, cache included) and ``ray.put`` its arrays once.
The tasks of all runs then read them from the object store of their node: on the driver's node
the NumPy arrays are mapped from shared memory without a copy, on another node Ray copies the
object over once per node. No worker needs the data on its disk or decodes it (see
``benchmarks/ray_data.py`` for the measurement behind this default).

The arrays travel as NumPy (Ray's zero-copy format) with the dataset's metadata, its ``source``
and ``checksum`` included, so a run records the same data origin whichever way the data came.
The shared arrays are read-only: nothing in training writes to a dataset's tensors.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from sweeplab.data import Dataset


@dataclass(frozen=True)
class SharedDataset:
    """Pickles as a small handle: the object store reference of a dataset's arrays."""

    ref: Any
    """``ray.ObjectRef`` of ``{"arrays": {field: ndarray}, "meta": {field: value}}``."""

    def get(self) -> Dataset:
        """The dataset, its tensors viewing the object store's (read-only) memory."""
        import ray

        packed = ray.get(self.ref)
        with warnings.catch_warnings():  # "the given NumPy array is not writable": nothing writes to it
            warnings.simplefilter("ignore", UserWarning)
            tensors = {k: torch.from_numpy(v) for k, v in packed["arrays"].items()}
        return Dataset(**packed["meta"], **tensors)


def share(ray: Any, dataset: Dataset) -> SharedDataset:
    """Put ``dataset`` in Ray's object store once (``ray`` is the connected module)."""
    arrays, meta = {}, {}
    for f in dataclasses.fields(dataset):
        value = getattr(dataset, f.name)
        if isinstance(value, torch.Tensor):
            arrays[f.name] = value.numpy()
        else:
            meta[f.name] = value
    return SharedDataset(ray.put({"arrays": arrays, "meta": meta}))
