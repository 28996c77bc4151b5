"""The report's figures (see ``canvas.py`` for how they are drawn, coloured and rendered).

Figures: one per metric overlaying every setting (mean over seeds with a shaded 95% band), one
small figure per arm, sweep figures for arms with one numeric grid axis, the per-class test
accuracy heatmap and the best setting's confusion matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.ticker import MaxNLocator

from sweeplab.vocabulary import lower_is_better

from .canvas import BASELINE_COLOUR, RC, Figure, Style, figure, styles
from .canvas import new as _new
from .stats import mean_curve, spans_decades
from .tables import ArmSetting, RunData

#: ``Figure``, ``Style``, ``styles`` and ``BASELINE_COLOUR`` live in ``canvas`` and are re-exported here.
__all__ = ["BASELINE_COLOUR", "CURVE_METRICS", "Figure", "Style", "arm_figure", "confusion_figure", "curve_figure",
           "per_class_figure", "styles"]

#: Metrics drawn as curves, with their titles; val and lr only when the study has them.
CURVE_METRICS: tuple[tuple[str, str], ...] = (
    ("train_loss", "Train loss"),
    ("train_acc", "Train accuracy"),
    ("test_loss", "Test loss"),
    ("test_acc", "Test accuracy"),
    ("val_loss", "Validation loss"),
    ("val_acc", "Validation accuracy"),
    ("lr", "Learning rate (at epoch start)"),
)
#: Loss axes switch to log scale when the plotted values span more than this many decades.
LOG_DECADES = 2.0
_RC = RC


def _is_acc(metric: str) -> bool:
    return metric.endswith("_acc")


def _scale(metric: str, values: list[float], diverged: bool) -> tuple[bool, str]:
    """(log y?, why) for a metric's axis. Losses go log when they span decades or a run diverged."""
    if metric == "lr":
        return (spans_decades(values, 1.0), "log scale: learning rates span decades") if values else (False, "")
    if not lower_is_better(metric):
        return False, ""
    if diverged:
        return True, "log scale because a run diverged"
    if spans_decades(values, LOG_DECADES):
        pos = [v for v in values if v > 0]
        return True, f"log scale: values span {math.log10(max(pos) / min(pos)):.1f} decades"
    return False, ""


def _draw_mean(ax: Any, runs: Sequence[RunData], metric: str, style: Style, label: str | None,
               scale: float, band: bool = True) -> list[float]:
    """Mean over runs per epoch with a 95% band; returns the plotted values (for axis decisions)."""
    mc = mean_curve([r.curve(metric) for r in runs])
    if not mc:
        return []
    xs = [e for e, _ in mc]
    ys = [m.mean * scale for _, m in mc]
    base = style.colour == BASELINE_COLOUR  # the baseline drawn thicker and on top, never hidden
    ax.plot(xs, ys, color=style.colour, linestyle=style.line, linewidth=2.6 if base else 1.8, label=label,
            marker="o" if len(xs) == 1 else None, markersize=4, zorder=5 if base else 2)
    if band and any(m.n >= 2 for _, m in mc):
        lo = [(m.ci_low if m.ci_low is not None else m.mean) * scale for _, m in mc]
        hi = [(m.ci_high if m.ci_high is not None else m.mean) * scale for _, m in mc]
        if _is_acc(metric):  # an accuracy's mean lies in [0, 100]%, so its interval can be cut there
            lo, hi = [max(v, 0.0) for v in lo], [min(v, 100.0) for v in hi]
        ax.fill_between(xs, lo, hi, color=style.colour, alpha=0.15, linewidth=0)
    return ys


def _positive_floor(ax: Any, values: list[float]) -> None:
    """On a log axis, keep a band's negative lower edge from squashing the plot."""
    pos = [v for v in values if v > 0]
    if pos:
        low = min(pos) / 2
        top = ax.get_ylim()[1]
        ax.set_ylim(bottom=max(ax.get_ylim()[0], low), top=top)


def _diverged_markers(ax: Any, settings: Sequence[ArmSetting], palette: dict[str, Style]) -> bool:
    """An X at the top edge at each epoch where a setting's runs diverged; True if any drawn."""
    drawn = False
    for s in settings:
        counts: dict[int, int] = {}
        for r in s.diverged_runs:
            if r.diverged_epoch is not None:
                counts[r.diverged_epoch] = counts.get(r.diverged_epoch, 0) + 1
        for epoch, n in counts.items():
            ax.plot([epoch], [0.96], transform=ax.get_xaxis_transform(), marker="X", markersize=10,
                    color=palette[s.label].colour, markeredgecolor="black", linestyle="none", clip_on=False)
            if n > 1:
                ax.annotate(f"×{n}", (epoch, 0.96), xycoords=ax.get_xaxis_transform(), xytext=(6, -3),
                            textcoords="offset points", fontsize=8)
            drawn = True
    return drawn


def curve_figure(settings: Sequence[ArmSetting], metric: str, title: str, palette: dict[str, Style],
                 ylabel: str | None = None) -> Figure | None:
    """Every setting's mean curve of ``metric`` over epochs; None when no run has the metric."""
    runs_by = [(s, s.trained_runs) for s in settings]
    if not any(r.curve(metric) for _, runs in runs_by for r in runs):
        return None
    diverged = any(s.diverged_runs for s in settings)
    scale = 100.0 if _is_acc(metric) else 1.0
    with matplotlib.rc_context(_RC):
        fig = _new(9.0, 4.6)
        ax = fig.add_subplot()
        values: list[float] = []
        for s, runs in sorted(runs_by, key=lambda sr: sr[0].position):
            if runs:
                values += _draw_mean(ax, runs, metric, palette[s.label], s.label, scale)
            elif s.diverged_runs:  # diverged before its first epoch: only the marker shows it
                ax.plot([], [], color=palette[s.label].colour, linestyle=palette[s.label].line, label=s.label)
        marked = metric != "lr" and _diverged_markers(ax, settings, palette)
        log, why = _scale(metric, values, diverged)
        if log:
            ax.set_yscale("log")
            _positive_floor(ax, values)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel((ylabel or title.split(" (")[0].lower()) + (" (%)" if scale == 100 else ""))
        full_title = f"{title} ({why})" if why else title
        ax.set_title(full_title)
        if marked:
            ax.plot([], [], marker="X", color="grey", markeredgecolor="black", linestyle="none",
                    label="diverged (epoch of the non-finite loss)")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    caption = ("Mean over seeds per epoch; the shaded band is the 95% confidence interval of the mean "
               "(absent where only one run has the epoch).")
    if why:
        caption += f" The y-axis is on a {why}."
    if marked:
        caption += " An X at the top marks the epoch in which runs diverged (×n: n seeds)."
    return figure(f"curve_{metric}", full_title, caption, fig, "curves")


def arm_figure(arm: str, settings: Sequence[ArmSetting], palette: dict[str, Style], slug: str,
               description: str = "") -> Figure | None:
    """Small figure of one arm: train loss and test accuracy, each seed thin, the mean thick."""
    if not any(s.trained_runs for s in settings):
        return None
    diverged = any(s.diverged_runs for s in settings)
    with matplotlib.rc_context(_RC):
        fig = _new(8.0, 2.9)
        ax_loss, ax_acc = fig.subplots(1, 2)
        loss_values: list[float] = []
        for s in settings:
            st = palette[s.label]
            for r in s.trained_runs:
                for ax, metric, scale in ((ax_loss, "train_loss", 1.0), (ax_acc, "test_acc", 100.0)):
                    c = r.curve(metric)
                    if c:
                        ax.plot([e for e, _ in c], [v * scale for _, v in c], color=st.colour,
                                linestyle=st.line, linewidth=0.7, alpha=0.4)
            loss_values += _draw_mean(ax_loss, s.trained_runs, "train_loss", st, None, 1.0, band=False)
            _draw_mean(ax_acc, s.trained_runs, "test_acc", st, s.label, 100.0, band=False)
        _diverged_markers(ax_loss, settings, palette)
        _diverged_markers(ax_acc, settings, palette)
        log, why = _scale("train_loss", loss_values, diverged)
        if log:
            ax_loss.set_yscale("log")
        ax_loss.set_title("train loss" + (f" ({why})" if why else ""))
        ax_acc.set_title("test accuracy (%)")
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_acc.legend(loc="lower right", frameon=False)
        fig.suptitle(f"arm: {arm}", fontsize=10)
    caption = "Thin lines: single seeds; thick: their mean." + (f" Loss on a {why}." if why else "")
    return figure(f"arm_{slug}", f"Arm {arm}", caption, fig, "arms", description)


def _tick_labels(k: int, names: Sequence[str]) -> list[str]:
    """Class names for up to k axis ticks (numbers where a name is missing)."""
    return [names[j] if j < len(names) else str(j) for j in range(k)]


def per_class_figure(settings: Sequence[ArmSetting], names: Sequence[str] = ()) -> Figure | None:
    """Heatmap of final per-class test accuracy (mean over seeds), one row per setting."""
    rows = [s for s in settings if s.per_class_acc]
    if not rows:
        return None
    k = max(len(s.per_class_acc or ()) for s in rows)
    data = [[100 * acc[j] if j < len(acc) else math.nan for j in range(k)]
            for acc in (s.per_class_acc or [] for s in rows)]
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        fig = _new(min(2.5 + 0.55 * k, 14), 1.2 + 0.32 * len(rows))
        ax = fig.add_subplot()
        im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=100)
        ax.set_yticks(range(len(rows)), [s.label for s in rows])
        ax.set_xticks(range(k), _tick_labels(k, names) if k <= 40 else [""] * k,
                      rotation=45 if names else 0, ha="right" if names else "center")
        ax.set_xlabel("class")
        if k <= 20 and len(rows) <= 40:
            for i, row in enumerate(data):
                for j, v in enumerate(row):
                    if not math.isnan(v):
                        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if v < 60 else "black")
        fig.colorbar(im, ax=ax, label="test accuracy (%)")
        ax.set_title("Per-class test accuracy at the final epoch (mean over completed seeds)")
    return figure("per_class", "Per-class test accuracy", "Rows in table order (best first).", fig, "per_class")


def confusion_figure(s: ArmSetting, names: Sequence[str] = ()) -> Figure | None:
    """The best setting's final test confusion matrix, summed over seeds, coloured by row share."""
    if not s.confusion:
        return None
    k = len(s.confusion)
    shares = [[v / max(1, sum(row)) for v in row] for row in s.confusion]
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        size = min(2.5 + 0.3 * k, 10)
        fig = _new(size + 1.2, size)
        ax = fig.add_subplot()
        im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        if k <= 20:
            for i, row in enumerate(s.confusion):
                for j, v in enumerate(row):
                    if v:
                        ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                                color="white" if shares[i][j] > 0.6 else "black")
        ticks = range(k) if k <= 40 else []
        labels = _tick_labels(len(ticks), names)
        ax.set_xticks(ticks, labels, rotation=45 if names else 0, ha="right" if names else "center")
        ax.set_yticks(ticks, labels)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        fig.colorbar(im, ax=ax, label="share of the true class")
        ax.set_title(f"Confusion matrix: {s.label} (final epoch, {s.final_test_acc.n} seeds summed)")
    return figure("confusion_best", f"Confusion matrix of the best setting ({s.label})",
                  "Counts summed over seeds; colour is the share of each true class.", fig, "confusion")
