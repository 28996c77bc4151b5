"""``--smoke``: the same study, tiny, so every study can be checked end to end in seconds.

One seed and one epoch (set by the CLI), and small data: a few hundred training and test examples,
a validation split (val_size) shrunk to fit them, short palindrome data sets. Everything else (models,
optimizers, schedules, augmentation, losses) stays as written, so a smoke run exercises the same
code paths as the real one.
"""

from __future__ import annotations

from pathlib import Path

from sweeplab.config import read_toml

SMOKE_TRAIN = 256
SMOKE_TEST = 128
SMOKE_VAL = 64


def smoke_overrides(path: str | Path) -> list[str]:
    """``--set`` overrides that shrink the study's data (validation split kept if it has one)."""
    data = read_toml(path)
    base = data.get("baseline", {}).get("data", {})
    arms = data.get("arm", [])
    sets = [f"data.train_subset={SMOKE_TRAIN + SMOKE_VAL}", f"data.test_subset={SMOKE_TEST}",
            f"data.train_size={SMOKE_TRAIN + SMOKE_VAL}", f"data.test_size={SMOKE_TEST}"]
    # A val_fraction scales with the subset by itself; a val_size must shrink to fit it.
    has_val_size = "val_size" in base or any("val_size" in a.get("data", {}) for a in arms)
    if has_val_size:
        sets.append(f"data.val_size={SMOKE_VAL}")
    return sets
