"""Figures against a grid value rather than the epoch: a sweep (the study metric against an arm's
numeric grid axis), the same for several chosen arms in one figure, and time and memory against
batch size.

Axes that read: a grid value axis is logarithmic when its values span a decade or more, and
symmetric-log (linear near 0, logarithmic beyond the smallest non-zero value) when it holds 0 and
the non-zero values span decades, so ``weight_decay = [0, 1e-5, 1e-4, 1e-3, 1e-2]`` gets five
distinct, labelled ticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.ticker import NullFormatter


from .canvas import BASELINE_COLOUR, RC, Figure, Style, figure, new
from .tables import ArmSetting


def value_axis(ax: Any, values: Sequence[float], axis: str) -> str:
    """Scale and ticks of a grid-value x axis; returns what the scale is, for the caption."""
    vals = sorted(set(values))
    nonzero = [abs(v) for v in vals if v != 0]
    why = ""
    if nonzero and min(vals) > 0 and max(vals) / min(vals) >= 10:
        ax.set_xscale("log")
        why = "logarithmic because the values span a decade or more"
    elif 0 in vals and len(nonzero) >= 2 and max(nonzero) / min(nonzero) >= 10:
        ax.set_xscale("symlog", linthresh=min(nonzero), linscale=0.5)
        if min(vals) == 0:  # nothing lies left of 0: keep the axis from reaching into negatives
            ax.set_xlim(-0.3 * min(nonzero), max(vals) * 1.5)
        why = (f"symmetric-log: linear up to {min(nonzero):g}, logarithmic beyond, so 0 and values "
               "spanning decades all stay apart")
    if len(vals) <= 12:  # label the grid values themselves, not powers of ten
        ax.set_xticks(vals, [f"{v:g}" for v in vals])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(axis + (f" ({ax.get_xscale()} scale)" if why else ""))
    return why


def _series(metric: str) -> list[tuple[str, str, str]]:
    """(summary attribute, legend text, format) of what a sweep draws for this study metric."""
    out = [("metric", f"final {metric}", "o-")]
    if metric in ("test_acc", "val_acc"):
        out.append((f"best_{metric}", f"best-epoch {metric}", "s--"))
    if metric != "test_acc":
        out.append(("final_test_acc", "final test_acc", "^:"))
    return out


def _errorbars(ax: Any, members: Sequence[ArmSetting], axis: str, attr: str, colour: Any, label: str,
               fmt: str, scale: float) -> None:
    pts = [(float(s.axes[axis]), getattr(s, attr)) for s in members if getattr(s, attr).n]
    if not pts:
        return
    x = [p[0] for p in pts]
    y = [scale * p[1].mean for p in pts]
    cut = (0.0, 1.0) if scale == 100.0 else (float("-inf"), float("inf"))
    # 95% CI, cut to the possible range of an accuracy (a t-interval of two seeds can pass it).
    lo = [scale * max(p[1].ci_low, cut[0]) if p[1].ci_low is not None else v for p, v in zip(pts, y)]
    hi = [scale * min(p[1].ci_high, cut[1]) if p[1].ci_high is not None else v for p, v in zip(pts, y)]
    ax.errorbar(x, y, yerr=[[v - a for v, a in zip(y, lo)], [b - v for v, b in zip(y, hi)]], fmt=fmt,
                color=colour, capsize=3, markersize=5, label=label,
                markerfacecolor=colour if fmt.startswith("o") else "white")


def _diverged(ax: Any, members: Sequence[ArmSetting], axis: str, colour: Any) -> None:
    for s in members:
        if not s.metric.n and s.diverged_runs:
            x = float(s.axes[axis])
            ax.plot([x], [0.04], transform=ax.get_xaxis_transform(), marker="X", markersize=10, color=colour,
                    markeredgecolor="black", linestyle="none")
            ax.annotate("diverged", (x, 0.04), xycoords=ax.get_xaxis_transform(), xytext=(7, -3),
                        textcoords="offset points", fontsize=8)


def sweep_figure(arm: str, settings: Sequence[ArmSetting], axis: str, baseline: ArmSetting | None,
                 palette: dict[str, Style], slug: str, metric: str = "test_acc") -> Figure:
    """The study metric (final and best epoch) against the arm's numeric grid value, 95% CI bars.

    Other (non-numeric) axes of the arm make separate lines. Points whose runs all diverged are
    marked at the bottom."""
    others = [k for k in dict.fromkeys(k for s in settings for k in s.axes) if k != axis]
    series: dict[str, list[ArmSetting]] = {}
    for s in settings:
        series.setdefault(", ".join(f"{k}={s.axes.get(k)}" for k in others), []).append(s)
    scale = 100.0 if metric.endswith("acc") else 1.0
    with matplotlib.rc_context(RC):
        fig = new(7.5, 4.2)
        ax = fig.add_subplot()
        for name, members in series.items():
            members = sorted(members, key=lambda s: s.axes[axis])
            colour = palette[members[0].label].colour
            for attr, label, fmt in _series(metric):
                _errorbars(ax, members, axis, attr, colour, label + (f" ({name})" if name else ""), fmt,
                           100.0 if attr == "final_test_acc" else scale)
            _diverged(ax, members, axis, colour)
        if baseline is not None and baseline.metric.n:
            ax.axhline(scale * baseline.metric.mean, color=BASELINE_COLOUR, linestyle=":", linewidth=1,
                       label=f"baseline (final {metric})")
        why = value_axis(ax, [float(s.axes[axis]) for s in settings], axis)
        ax.set_ylabel(metric.replace("_", " ") + (" (%)" if scale == 100 else ""))
        ax.set_title(f"{arm}: {metric} against {axis}")
        ax.legend(frameon=False, loc="best")
    caption = (f"Mean over seeds of the final (filled) and best-epoch (hollow) {metric} at each value of "
               f"{axis}; error bars are 95% confidence intervals (none with one seed).")
    if metric != "test_acc":
        caption += " Triangles: final test accuracy, for reference."
    if why:
        caption += f" The x-axis is {why}."
    return figure(f"sweep_{slug}", f"Sweep: {arm} over {axis}", caption, fig, "sweeps")


def overlay_sweep(arms: dict[str, list[ArmSetting]], axis: str, palette: dict[str, Style], metric: str,
                  name: str, title: str) -> Figure:
    """Several arms' sweeps over the same grid axis in one figure (one line per arm)."""
    scale = 100.0 if metric.endswith("acc") else 1.0
    with matplotlib.rc_context(RC):
        fig = new(7.5, 4.2)
        ax = fig.add_subplot()
        xs: list[float] = []
        for arm, members in arms.items():
            members = sorted(members, key=lambda s: s.axes[axis])
            colour = palette[members[0].label].colour
            _errorbars(ax, members, axis, "metric", colour, arm, "o-", scale)
            _diverged(ax, members, axis, colour)
            if not any(s.metric.n for s in members):  # all diverged or none completed: still in the legend
                ax.plot([], [], "o-", color=colour, label=f"{arm} (no completed run)")
            xs += [float(s.axes[axis]) for s in members]
        why = value_axis(ax, xs, axis)
        ax.set_ylabel(metric.replace("_", " ") + (" (%)" if scale == 100 else ""))
        ax.set_title(title)
        ax.legend(frameon=False, loc="best")
    caption = (f"Final {metric} (mean over seeds, 95% CI bars) against {axis} for each chosen arm; "
               "an X at the bottom marks a value whose runs all diverged.")
    return figure(name, title, caption + (f" The x-axis is {why}." if why else ""), fig, "overlays")


def resources_figure(members: Sequence[ArmSetting], device_is_cpu: bool, name: str) -> Figure | None:
    """Time per epoch, train images/s and peak memory against batch size (settings that differ in it only)."""
    pts = sorted(((s.batch_size, s) for s in members if isinstance(s.batch_size, int) and s.epoch_time_s.n),
                 key=lambda p: p[0])
    if len({b for b, _ in pts}) < 2:
        return None
    with matplotlib.rc_context(RC):
        fig = new(10.5, 3.2)
        axes = fig.subplots(1, 3)
        for ax, attr, label in zip(axes, ("epoch_time_s", "images_per_s", "peak_mem_mb"),
                                   ("time per epoch (s)", "train images / s", "peak memory (MiB)")):
            xs = [float(b) for b, s in pts if getattr(s, attr).n]
            ys = [getattr(s, attr).mean for _, s in pts if getattr(s, attr).n]
            ax.plot(xs, ys, "o-", color=BASELINE_COLOUR)
            value_axis(ax, [float(b) for b, _ in pts], "batch size")
            ax.set_title(label + (" (CPU: process peak RSS)" if attr == "peak_mem_mb" and device_is_cpu else ""))
            if attr == "peak_mem_mb":
                ax.set_ylim(bottom=0)  # from zero: on the CPU a few MiB of noise must not look like a trend
            elif ys and min(ys) > 0 and max(ys) / min(ys) >= 10:
                ax.set_yscale("log")
    mem = ("On the CPU, peak memory is the worker process's peak resident size, which never resets and "
           "includes earlier runs in that process: read it as an upper bound, not as the batch's cost."
           if device_is_cpu else "Peak memory is the accelerator's peak allocated memory during the run.")
    caption = ("Median over epochs of each run, mean over seeds, for the settings that differ only in batch "
               f"size. {mem}")
    return figure(name, "Time and memory against batch size", caption, fig, "resources")


__all__ = ["overlay_sweep", "resources_figure", "sweep_figure", "value_axis"]
