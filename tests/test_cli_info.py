"""The informational commands list what is registered and describe models exactly."""

from __future__ import annotations

import re

from sweeplab.data import list_datasets
from sweeplab.models import list_models

from helpers import sweeplab


def _first_column(table: str) -> set[str]:
    """The first cell of every row of a rich table (so "mlp" is not found inside "numpy_mlp")."""
    cells = (re.split(r"[│┃|]", line) for line in table.splitlines())
    return {c[1].strip() for c in cells if len(c) > 2}


def test_models_and_datasets_list_every_registered_name():
    r = sweeplab("models")
    assert r.returncode == 0, r.stderr
    assert set(list_models()) <= _first_column(r.stdout)
    r = sweeplab("datasets")
    assert r.returncode == 0, r.stderr
    assert set(list_datasets()) <= _first_column(r.stdout)


def test_summary_reports_exact_counts_and_flops():
    r = sweeplab("summary", "tutorial_cnn")
    assert r.returncode == 0, r.stderr
    assert "total params: 62,006" in r.stdout
    # conv1 6x28x28 outputs x 75 MACs, conv2 16x10x10 x 150, fc 400x120 + 120x84 + 84x10; 2 FLOPs per MAC
    flops = 2 * (6 * 28 * 28 * 75 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10)
    assert f"FLOPs/example: {flops:,}" in r.stdout
    r = sweeplab("summary", "mlp", "--set", "model.hidden=[110,74]")
    assert r.returncode == 0, r.stderr
    assert "total params: 346,994" in r.stdout
    r = sweeplab("summary", "mlp", "--dataset", "digits", "--set", "model.hidden=[16]")
    assert r.returncode == 0, r.stderr
    assert f"total params: {64 * 16 + 16 + 16 * 10 + 10:,}" in r.stdout
