"""Terminal rendering with rich: config panels, per-epoch tables, live progress."""

from __future__ import annotations

import json
from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sweeplab.config import flatten
from sweeplab.report.numbers import fmt

# emoji=False: ":M:" in "nets.py:M:" is text, not an emoji code.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

#: (row key, column title, format) of the per-epoch table, in display order.
EPOCH_COLUMNS = [
    ("train_loss", "train loss", "{:.4f}"),
    ("train_acc", "train acc", "{:.2%}"),
    ("val_loss", "val loss", "{:.4f}"),
    ("val_acc", "val acc", "{:.2%}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("test_acc", "test acc", "{:.2%}"),
    ("lr", "lr", "{:.3g}"),
    ("epoch_time_s", "time s", "{:.2f}"),
    ("train_images_per_s", "img/s", "{:,.0f}"),
    ("peak_mem_mb", "peak MiB", "{:,.0f}"),
]


def epoch_table(rows: Iterable[dict[str, Any]], title: str | None = None) -> Table:
    rows = list(rows)
    cols = [c for c in EPOCH_COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    table = Table(title=title, header_style="bold")
    table.add_column("epoch", justify="right")
    for _, name, _ in cols:
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(str(r["epoch"]), *(fmt(r.get(key), pattern) for key, _, pattern in cols))
    return table


def epoch_line(epoch: int, epochs: int, row: dict[str, Any]) -> str:
    """One printed line per finished epoch (the table is printed again at the end)."""
    parts = [f"epoch {epoch:>3}/{epochs}"]
    for key, name, pattern in EPOCH_COLUMNS:
        if row.get(key) is not None:
            parts.append(f"{name} {fmt(row[key], pattern)}")
    return "  ".join(parts)


def start_line(info: dict[str, Any]) -> str:
    """What a run trains on, printed when it starts."""
    val = f"val {info['n_val']}, " if info.get("n_val") else ""
    resumed = f" | resumed after epoch {info['resumed_from']}" if info.get("resumed_from") else ""
    if info.get("continuation"):  # continued from a shorter run, or why not
        resumed = f" | {info['continuation']}"
    notes = "".join(f"\nnote: {n}" for n in info.get("notes") or ())
    return (
        f"data: {info['dataset']} ({info['source']}, sha256 {str(info['checksum'])[:12]}): train {info['n_train']}, "
        f"{val}test {info['n_test']} | model {info['model']}: {info['params']:,} params, "
        f"{info['flops'] / 1e6:,.2f} MFLOPs/example | device {info['device']} | batch {info['batch_size']}{resumed}{notes}"
    )


def config_table(config: dict[str, Any], title: str = "resolved config") -> Table:
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    table.add_column(style="cyan")
    table.add_column()
    for key, value in flatten(config).items():
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    return table


def batch_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
