"""Checkpoints: what a run's ``last`` and ``best`` blobs hold, and the RNG state that makes a
resumed run give the same curves as an uninterrupted one."""

from __future__ import annotations

import io
import math
import random
from typing import Any

import numpy as np
import torch

from sweeplab.vocabulary import lower_is_better




def _is_better(metric: str, value: float | None, best: float | None) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value < best if lower_is_better(metric) else value > best


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _from_bytes(blob: bytes) -> Any:
    # Our own checkpoints hold numpy RNG state and python tuples, so weights_only is too strict.
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)


