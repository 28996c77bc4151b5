"""The live view of ``sweeplab run``: overall progress and ETA, one line per active run, and one
plain line per finished run when the output is not a terminal (logs)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from sweeplab.vocabulary import detail_line

from .display import console, fmt


class LiveDisplay:
    """Overall progress (runs done/total, ETA) and one line per active run.

    On a terminal it is a rich ``Live`` renderable. With ``plain=True`` (output to a file or a
    pipe, e.g. ``sweeplab run ... > log``) it prints one line per finished run instead, so a log
    of a long study shows its progress as it goes rather than only the last frame.
    """

    def __init__(self, spec, todo, workers: int, *, plain: bool = False):
        self.spec, self.workers, self.plain = spec, workers, plain
        self.labels = {r.run_id: r.label for r in todo}
        self.planned = {r.run_id: r.config.epochs for r in todo}
        self.total_runs = len(todo)
        self.total_epochs = sum(self.planned.values())
        self.done_runs = 0
        self.done_epochs = 0
        self.outcomes: dict[str, int] = {}
        self.active: dict[str, dict[str, Any]] = {}
        self.t0 = time.monotonic()
        self.lines: list[str] = []

    def on_event(self, run_id: str, event: str, info: dict[str, Any]) -> None:
        a = self.active.setdefault(run_id, {"label": self.labels.get(run_id, run_id), "epoch": 0, "step": 0})
        if event == "start":
            a.update(epochs=info["epochs"], epoch=info["resumed_from"], resumed=info["resumed_from"])
            self.done_epochs += info["resumed_from"]
            if info.get("continuation"):  # continued from a shorter run of the same config, or why not
                line = f"{a['label']} [{run_id}]: {info['continuation']}"
                self.lines.append(line)
                if self.plain:
                    console.print(line, markup=False, highlight=False, soft_wrap=True)
        elif event == "batch":
            a.update(step=info["step"], steps=info["steps"], epoch=info["epoch"] - 1)
        elif event == "epoch":
            a.update(epoch=info["epoch"], row=info["row"], step=0)
            self.done_epochs += 1
        elif event == "end":
            finished = self.active.pop(run_id, a)
            self.done_runs += 1
            # A run that stopped early (diverged, failed) will not train its remaining epochs.
            self.total_epochs -= max(0, self.planned.get(run_id, 0) - finished["epoch"])
            self.outcomes[info["status"]] = self.outcomes.get(info["status"], 0) + 1
            detail = detail_line(info.get("detail"))
            if info["status"] != "completed":
                self.lines.append(f"{self.labels.get(run_id, run_id)} [{run_id}]: {info['status']} {detail}")
            if self.plain:
                row = finished.get("row", {})
                result = f"test acc {fmt(row.get('test_acc'), '{:.2%}')}" if info["status"] == "completed" else detail
                console.print(f"[{self.done_runs}/{self.total_runs}] {finished['label']} [{run_id}]: "
                              f"{info['status']}, {result} | {self._progress()}",
                              markup=False, highlight=False, soft_wrap=True)  # one line each, for logs

    def _progress(self) -> str:
        elapsed = time.monotonic() - self.t0
        frac = self.done_epochs / max(1, self.total_epochs)
        eta = f"{elapsed / frac * (1 - frac):,.0f}s" if frac > 0.02 else "?"
        return f"epochs {self.done_epochs}/{self.total_epochs} | {elapsed:,.0f}s elapsed, ETA {eta}"

    def __rich__(self) -> Group:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "-"
        head = (f"[bold]{escape(self.spec.name)}[/]: runs {self.done_runs}/{self.total_runs} "
                f"({outcomes}) | {self._progress()}")
        if not self.active:
            return Group(head, *[escape(x) for x in self.lines[-5:]])
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("run", "epoch", "progress", "train loss", "train acc", "test acc"):
            table.add_column(col)
        for run_id, a in list(self.active.items()):
            row = a.get("row", {})
            steps = a.get("steps")
            prog = f"{a['step']}/{steps}" if steps else ""
            table.add_row(escape(a["label"])[:60], f"{a['epoch']}/{a.get('epochs', '?')}", prog,
                          fmt(row.get("train_loss"), "{:.4f}"), fmt(row.get("train_acc"), "{:.2%}"),
                          fmt(row.get("test_acc"), "{:.2%}"))
        return Group(head, table, *[escape(x) for x in self.lines[-5:]])
