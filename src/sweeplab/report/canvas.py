"""What every report figure shares: the :class:`Figure` record, the arm palette, the page style and
rendering to PNG, SVG or PDF.

Figures are drawn with matplotlib's object API on a bare ``Figure`` (no pyplot, no backend
switching: pyplot holds global state, and ``sweeplab run --report`` redraws from a callback while
the study trains). A :class:`Figure` keeps its PNG for the HTML page and the matplotlib figure
itself, so ``--figure-format svg,pdf`` renders vector files for a paper from the same drawing, and
tests can read an axis' scale from the object instead of from pixels.

Colours: each arm setting keeps one colour and line style in every figure, assigned in study order
rather than by results, so a refreshed report does not repaint its arms. The palette is Okabe and
Ito's colour-blind-safe set (without black), then Tol's muted set; the baseline is near-black.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure as _MplFigure

from sweeplab.errors import ConfigError

from .tables import ArmSetting

BASELINE_COLOUR = "#1a1a1a"
#: Okabe & Ito (2008), "Color Universal Design", less black; then Paul Tol's "muted" scheme; Okabe
#: and Ito's yellow last, as it reads poorly on white.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7",
           "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499",
           "#F0E442")
LINE_STYLES = ("-", "--", "-.", ":")
#: PNG resolution: 200 dpi, sharp when printed; the HTML shows it at its size in inches × 100 px.
DPI = 200
SCREEN_DPI = 100
RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3}
FIGURE_FORMATS = ("png", "svg", "pdf")
#: No metadata that names software, a URL or the time: the files must hold no external reference
#: (and two renders of one report compare equal).
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
             "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


@dataclass(frozen=True)
class Figure:
    """One rendered figure: a file stem, a title, a caption saying how to read it, PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes
    section: str
    """curves, arms, sweeps, overlays, resources, per_class or confusion: where the report places it."""
    description: str = ""
    """Text the report shows above the figure (an arm's description from the study file)."""
    mpl: Any = field(default=None, compare=False, repr=False)
    """The matplotlib figure it was drawn on (for vector formats and for reading its axes)."""

    @property
    def width_px(self) -> int:
        """Width to show it at on a screen, in CSS pixels."""
        return int(round(self.mpl.get_figwidth() * SCREEN_DPI)) if self.mpl is not None else 0

    def render(self, fmt: str) -> bytes:
        """The figure as ``png`` (the stored bytes), ``svg`` or ``pdf``."""
        if fmt == "png" or self.mpl is None:
            return self.png
        return save(self.mpl, fmt)


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
        out[s.label] = Style(PALETTE[i % len(PALETTE)], LINE_STYLES[(i // len(PALETTE)) % len(LINE_STYLES)])
        i += 1
    return out


def save(fig: _MplFigure, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return buf.getvalue()


def new(width: float, height: float) -> _MplFigure:
    return _MplFigure(figsize=(width, height), dpi=SCREEN_DPI, layout="constrained")


def figure(name: str, title: str, caption: str, fig: _MplFigure, section: str, description: str = "") -> Figure:
    """A :class:`Figure` from a drawn matplotlib figure (renders its PNG now)."""
    return Figure(name, title, caption, save(fig, "png"), section, description, fig)


def parse_figure_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"png,svg"`` -> validated tuple; ``ConfigError`` naming ``--figure-format`` otherwise."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = tuple(dict.fromkeys(f.strip().lower() for f in items if f.strip()))
    bad = [f for f in out if f not in FIGURE_FORMATS]
    if bad or not out:
        raise ConfigError(f"figure formats are {', '.join(FIGURE_FORMATS)}, comma-separated "
                          f"(got {','.join(items) or 'nothing'})", path="--figure-format")
    return out
