"""The user's own data: ``data.dataset = "mydata.py:load"``, a function that returns arrays.

The function takes no arguments and returns the four arrays of a Keras-style split, as a dict
``{"x_train", "y_train", "x_test", "y_test"}`` (optionally ``"classes"``: class names) or a tuple
``(x_train, y_train, x_test, y_test[, classes])``; NumPy arrays or torch tensors. Inputs are read
as :mod:`sweeplab.data.npz` reads them: uint8 images NHWC or NCHW, float features, int token
sequences. The run's config carries the file by content, so every worker calls the same code;
the device loader normalises and augments the result like any other dataset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..usercode import an, load_attribute, parse_ref
from .npz import REQUIRED, from_arrays
from .types import Dataset

KEY = "data.dataset"


def _as_array(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as e:  # noqa: BLE001 - whatever the user's function returned
        raise DataError(f"{what} is not an array ({type(e).__name__}: {e})", path=KEY) from None


def _arrays(result: Any, name: str) -> tuple[dict[str, np.ndarray], list[str] | None]:
    if isinstance(result, Mapping):
        missing = [k for k in REQUIRED if k not in result]
        if missing:
            raise DataError(f"{name}() returned a dict without {', '.join(missing)}; need {' '.join(REQUIRED)}",
                            path=KEY)
        classes = result.get("classes")
        parts = [result[k] for k in REQUIRED]
    elif isinstance(result, (tuple, list)) and len(result) in (4, 5):
        parts, classes = list(result[:4]), (result[4] if len(result) == 5 else None)
    else:
        raise DataError(f"{name}() returned a {type(result).__name__}; return x_train, y_train, x_test, y_test "
                        "[, classes] or a dict of them", path=KEY)
    arrays = {k: _as_array(v, f"{name}(): {k}") for k, v in zip(REQUIRED, parts)}
    return arrays, None if classes is None else [str(c) for c in classes]


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in REQUIRED:
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_user_data(dataset: str, code: Mapping[str, Any]) -> Dataset:
    """Call the data function ``dataset`` names and check what it returns."""
    ref = parse_ref(dataset)
    assert ref is not None
    fn = load_attribute(ref, code, KEY)
    if not callable(fn):
        raise ConfigError(f"{dataset} is {an(type(fn).__name__)}, not a function returning arrays", path=KEY)
    try:
        result = fn()
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's function: one line naming it
        detail = f"SystemExit: {e.code}" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
        raise DataError(f"{dataset}() failed: {detail}", path=KEY) from None
    arrays, classes = _arrays(result, dataset)
    return from_arrays(arrays, classes, name=ref[1], what=f"{dataset}()", key=KEY,
                       source=f"{dataset} (sha256 {code[ref[0]].sha256[:12]})", checksum=_checksum(arrays))
