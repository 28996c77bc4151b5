"""The report's figures, drawn with matplotlib's object API on the Agg canvas and kept as PNG bytes.

No pyplot and no backend switching: pyplot holds global state, and ``sweeplab run --report``
redraws from a callback while the study trains; ``Figure.savefig`` renders PNG with Agg anyway.
Each arm setting keeps one colour (and line style) in every figure, assigned in study order
rather than by results, so a refreshed report does not repaint its arms. The baseline is always
near-black.

Figures: one per metric overlaying every setting (mean over seeds with a shaded 95% band), one
small figure per arm, sweep figures for arms with one numeric grid axis, the per-class test
accuracy heatmap and the best setting's confusion matrix.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib import colormaps
from matplotlib.figure import Figure as _MplFigure
from matplotlib.ticker import MaxNLocator, NullFormatter
from sweeplab.vocabulary import lower_is_better

from .stats import mean_curve, spans_decades
from .tables import ArmSetting, RunData

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
BASELINE_COLOUR = "#1a1a1a"
# tab10 without its grey (kept for nothing) and without near-black, then Dark2 for more arms.
_PALETTE = [c for i, c in enumerate(colormaps["tab10"].colors) if i != 7] + list(colormaps["Dark2"].colors)
_STYLES = ("-", "--", "-.", ":")
DPI = 100
_RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3}


@dataclass(frozen=True)
class Figure:
    """One rendered figure: a file stem, a title, a caption saying how to read it, PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes
    section: str
    """curves, arms, sweeps, per_class or confusion: where the report places it."""


@dataclass(frozen=True)
class Style:
    colour: Any
    line: str


def styles(settings: Sequence[ArmSetting]) -> dict[str, Style]:
    """Label -> colour and line style, by study order (``ArmSetting.position``), baseline first."""
    out: dict[str, Style] = {}
    i = 0
    for s in sorted(settings, key=lambda s: s.position):
        if s.is_baseline:
            out[s.label] = Style(BASELINE_COLOUR, "-")
            continue
        out[s.label] = Style(_PALETTE[i % len(_PALETTE)], _STYLES[(i // len(_PALETTE)) % len(_STYLES)])
        i += 1
    return out


def _png(fig: _MplFigure) -> bytes:
    buf = io.BytesIO()
    # No Software/URL metadata: the HTML must hold no external reference, even inside an image.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _new(width: float, height: float) -> _MplFigure:
    return _MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")


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
    ax.plot(xs, ys, color=style.colour, linestyle=style.line, linewidth=1.8, label=label,
            marker="o" if len(xs) == 1 else None, markersize=4)
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


def curve_figure(settings: Sequence[ArmSetting], metric: str, title: str, palette: dict[str, Style]) -> Figure | None:
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
        ax.set_ylabel(f"{title.split(' (')[0].lower()}" + (" (%)" if scale == 100 else ""))
        full_title = f"{title} ({why})" if why else title
        ax.set_title(full_title)
        if marked:
            ax.plot([], [], marker="X", color="grey", markeredgecolor="black", linestyle="none",
                    label="diverged (epoch of the non-finite loss)")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        png = _png(fig)
    caption = ("Mean over seeds per epoch; the shaded band is the 95% confidence interval of the mean "
               "(absent where only one run has the epoch).")
    if why:
        caption += f" The y-axis is on a {why}."
    if marked:
        caption += " An X at the top marks the epoch in which runs diverged (×n: n seeds)."
    return Figure(f"curve_{metric}", full_title, caption, png, "curves")


def arm_figure(arm: str, settings: Sequence[ArmSetting], palette: dict[str, Style], slug: str) -> Figure | None:
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
        png = _png(fig)
    caption = "Thin lines: single seeds; thick: their mean." + (f" Loss on a {why}." if why else "")
    return Figure(f"arm_{slug}", f"Arm {arm}", caption, png, "arms")


def sweep_figure(arm: str, settings: Sequence[ArmSetting], axis: str, baseline: ArmSetting | None,
                 palette: dict[str, Style], slug: str) -> Figure:
    """Final and best test accuracy against the arm's numeric grid value, with 95% CI error bars.

    Other (non-numeric) axes of the arm make separate lines. Points whose runs all diverged are
    marked at the bottom.
    """
    others = [k for k in dict.fromkeys(k for s in settings for k in s.axes) if k != axis]
    series: dict[str, list[ArmSetting]] = {}
    for s in settings:
        key = ", ".join(f"{k}={s.axes.get(k)}" for k in others)
        series.setdefault(key, []).append(s)
    xs_all = [float(s.axes[axis]) for s in settings]
    log_x = min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10
    with matplotlib.rc_context(_RC):
        fig = _new(7.5, 4.2)
        ax = fig.add_subplot()
        for name, members in series.items():
            members = sorted(members, key=lambda s: s.axes[axis])
            colour = palette[members[0].label].colour if len(series) > 1 else "#1f77b4"
            for attr, label, fmt in (("final_test_acc", "final", "o-"), ("best_test_acc", "best epoch", "s--")):
                pts = [(float(s.axes[axis]), getattr(s, attr)) for s in members if getattr(s, attr).n]
                if not pts:
                    continue
                x = [p[0] for p in pts]
                y = [100 * p[1].mean for p in pts]
                # 95% CI, cut to the possible range [0, 100]% (a t-interval of two seeds can pass it).
                lo = [100 * max(p[1].ci_low, 0.0) if p[1].ci_low is not None else v for p, v in zip(pts, y)]
                hi = [100 * min(p[1].ci_high, 1.0) if p[1].ci_high is not None else v for p, v in zip(pts, y)]
                err = [[v - a for v, a in zip(y, lo)], [b - v for v, b in zip(y, hi)]]
                ax.errorbar(x, y, yerr=err, fmt=fmt, color=colour, capsize=3, markersize=5,
                            markerfacecolor=colour if attr == "final_test_acc" else "white",
                            label=f"{label} test acc" + (f" ({name})" if name else ""))
            for s in members:
                if not s.final_test_acc.n and s.diverged_runs:
                    ax.plot([float(s.axes[axis])], [0.04], transform=ax.get_xaxis_transform(), marker="X",
                            markersize=10, color=colour, markeredgecolor="black", linestyle="none")
                    ax.annotate("diverged", (float(s.axes[axis]), 0.04), xycoords=ax.get_xaxis_transform(),
                                xytext=(7, -3), textcoords="offset points", fontsize=8)
        if baseline is not None and baseline.final_test_acc.n:
            ax.axhline(100 * baseline.final_test_acc.mean, color=BASELINE_COLOUR, linestyle=":", linewidth=1,
                       label="baseline (final)")
        if log_x:
            ax.set_xscale("log")
        values = sorted(set(xs_all))
        if len(values) <= 12:  # label the grid values themselves, not powers of ten
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(axis + (" (log scale)" if log_x else ""))
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{arm}: test accuracy against {axis}")
        ax.legend(frameon=False, loc="best")
        png = _png(fig)
    caption = (f"Mean over seeds of the final (filled) and best-epoch (hollow) test accuracy at each value "
               f"of {axis}; error bars are 95% confidence intervals (none with one seed).")
    if log_x:
        caption += " The x-axis is logarithmic because the values span a decade or more."
    return Figure(f"sweep_{slug}", f"Sweep: {arm} over {axis}", caption, png, "sweeps")


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
        png = _png(fig)
    return Figure("per_class", "Per-class test accuracy", "Rows in table order (best first).", png, "per_class")


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
        png = _png(fig)
    return Figure("confusion_best", f"Confusion matrix of the best setting ({s.label})",
                  "Counts summed over seeds; colour is the share of each true class.", png, "confusion")
