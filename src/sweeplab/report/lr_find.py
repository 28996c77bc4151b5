"""The plot of an LR range test (``sweeplab lr-find``): loss against learning rate on a log
axis, the smoothed curve over the raw losses, the suggested learning rate marked.

Drawn from the curve as the store keeps it (``lr_finds.curve_json``), so a report or the
dashboard can redraw a stored test. Matplotlib's object API, no pyplot (see ``figures.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

#: Pixels per inch of the PNG (the figure is 7 x 4.2 inches).
DPI = 100
_RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3,
       "svg.hashsalt": "sweeplab-lr-find"}  # fixed ids: the same test writes the same SVG
FORMATS = ("png", "svg")


def lr_find_figure(curve: Mapping[str, Any], suggestion: float | None, method: str, title: str) -> Figure:
    """The figure of one test: ``curve`` has ``lrs``, ``losses``, ``smoothed`` (and ``index``,
    the step the suggestion was read at)."""
    lrs = np.asarray(curve["lrs"], dtype=float)
    smoothed = np.asarray(curve["smoothed"], dtype=float)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7.0, 4.2), dpi=DPI)
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.92)
        ax = fig.add_subplot()
        ax.plot(lrs, curve["losses"], color="#9e9e9e", linewidth=0.8, alpha=0.7, label="loss (each step)")
        ax.plot(lrs, smoothed, color="#1f77b4", linewidth=1.8, label="smoothed loss (EMA 0.98, debiased)")
        if suggestion is not None and len(lrs):
            y = float(np.interp(np.log(suggestion), np.log(lrs), smoothed))
            ax.axvline(suggestion, color="#d62728", linestyle="--", linewidth=1.0)
            ax.plot([suggestion], [y], marker="o", color="#d62728", linestyle="none",
                    label=f"suggestion ({method}): {suggestion:.3g}")
        ax.set_xscale("log")
        # Plain "1e-05" labels and unlabelled minor ticks: mathtext labels take seconds to lay out.
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")))
        ax.xaxis.set_minor_formatter(NullFormatter())
        if len(smoothed):  # the raw losses of the last steps can dwarf the curve: keep it in view
            lo, hi = float(np.min(smoothed)), float(np.max(smoothed))
            pad = 0.08 * (hi - lo or abs(hi) or 1.0)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        ax.set_title(title)
        ax.legend(loc="lower left", frameon=False)
    return fig


def save_lr_find_figure(fig: Figure, stem: Path) -> dict[str, Path]:
    """Write ``STEM.png`` and ``STEM.svg``; the files by format."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    files = {}
    with matplotlib.rc_context(_RC):
        for fmt in FORMATS:
            path = stem.with_name(f"{stem.name}.{fmt}")
            # No dates in the files: the same test writes byte-identical plots.
            meta = {"Date": None} if fmt == "svg" else {}
            fig.savefig(path, format=fmt, metadata=meta)
            files[fmt] = path
    return files
