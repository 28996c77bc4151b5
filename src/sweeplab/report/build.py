"""Assemble a study's report from the store, and write it as HTML and/or Markdown.

``build_report`` gives every number, finding and figure as data (a :class:`Report`), so tests
and other front ends (a dashboard) can use them without parsing HTML; ``write_report`` renders
and writes the files. Both only read the store.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeplab.errors import ConfigError
from sweeplab.store import Store

from . import figures as figs
from . import step_figures
from . import sweep_figures as sweep_figs
from .canvas import parse_figure_formats
from .explain import explain
from .findings import METHOD_NOTES, Finding, write_findings
from .header import Header, make_header
from .paths import MANIFEST, MAX_SLUG, read_manifest, remove_stale, safe_name
from .tables import (
    ArmSetting,
    batch_families,
    by_arm,
    RunData,
    config_diff,
    group_settings,
    load_runs,
    numeric_axis,
    rank_settings,
    reference_config,
)

FORMATS = ("html", "md")
FIGURES_DIR = "figures"


@dataclass
class Report:
    """Everything a report states, as data."""

    header: Header
    settings: list[ArmSetting]
    """Comparison-table rows, in table order (best by the study metric first)."""
    runs: list[RunData]
    """Every (arm, run) link, in study order."""
    findings: list[Finding]
    figures: list[figs.Figure] = field(default_factory=list)
    reference: dict[str, Any] = field(default_factory=dict)
    """The study's free-form ``reference`` table as written."""
    reference_columns: list[str] = field(default_factory=list)
    """Reference keys matched to arm settings (shown as table columns)."""
    base_config: dict[str, Any] = field(default_factory=dict)
    """Flattened config that the appendix's per-run differences are relative to."""
    notes: tuple[str, ...] = METHOD_NOTES
    overlays: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    """(arms, title) drawn together (the study's ``[[figure]]`` tables, then ``--arms``)."""
    device_is_cpu: bool = False
    lr_finds: list[Any] = field(default_factory=list)
    """The study's stored LR range tests (``sweeplab lr-find``), oldest first."""

    def setting(self, label: str) -> ArmSetting:
        """The arm setting with this label (KeyError if none)."""
        for s in self.settings:
            if s.label == label:
                return s
        raise KeyError(label)

    @property
    def best(self) -> ArmSetting | None:
        return next((s for s in self.settings if s.rank == 1), None)

    def findings_of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def config_diff(self, run: RunData) -> dict[str, Any]:
        """What a run's config changes relative to ``base_config`` (seed left out)."""
        return config_diff(run.config, self.base_config)


def build_report(store: Store, study: str, *, with_figures: bool = True,
                 version: int | None = None, arms: str | Iterable[str] | None = None) -> Report:
    """Read a study from ``store`` and compute its report (``StoreError`` if it is unknown).

    ``version``: which stored version of the study (default: the store's default version).
    ``arms``: arms to draw together in one more figure (``"rnn,lstm"``), besides the study file's
    ``[[figure]]`` tables; ``ConfigError`` naming ``--arms`` for an arm the study does not have."""
    from sweeplab.store.versions import describe

    record = store.get_study(study, version)
    spec = record.spec
    runs = load_runs(store, study, record.version)
    header = make_header(record, runs)
    default = record.version if version is None else store.get_study(study).version
    header = dataclasses.replace(header, study_version=describe(
        record.version, record.versions, record.variant, record.version == default))
    settings = group_settings(runs, spec)
    described = {a.name: a.description for a in record.arms}
    for st in settings:  # the stored column (schema 3); the spec's text for older rows
        st.description = described.get(st.arm) or st.description
    settings = rank_settings(settings, header.metric)
    reference = dict(spec.get("reference") or {})
    columns = attach_reference(reference, settings)
    device_is_cpu = bool(header.devices) and all(d.lower().startswith("cpu") for d in header.devices)
    findings = write_findings(settings, header.metric, device_is_cpu)
    # The explaining checks go after the answer (best, baseline, chains, sweeps), before the rest.
    at = next((i for i, f in enumerate(findings) if f.kind not in ("best", "baseline", "stacked", "sweep")),
              len(findings))
    findings[at:at] = explain(settings, header.metric, reference, [src for src, _, _ in header.data])
    report = Report(header, settings, runs, findings, [], reference, columns, reference_config(runs),
                    overlays=overlay_groups(spec, settings, arms), device_is_cpu=device_is_cpu,
                    lr_finds=store.lr_finds(study))
    if with_figures:
        report.figures = draw_figures(report)
    return report


def overlay_groups(spec: Mapping[str, Any], settings: list[ArmSetting],
                   arms: str | Iterable[str] | None) -> list[tuple[tuple[str, ...], str]]:
    """The arm groups to overlay, with titles: each ``[[figure]]`` of the study, then ``arms``."""
    known = list(dict.fromkeys(s.arm for s in sorted(settings, key=lambda s: s.position)))
    groups = [(tuple(f.get("arms", ())), str(f.get("title") or ""), "figure.arms")
              for f in spec.get("figures", []) if isinstance(f, Mapping)]
    if arms is not None:
        items = arms.split(",") if isinstance(arms, str) else list(arms)
        groups.append((tuple(a.strip() for a in items if a.strip()), "", "--arms"))
    out: list[tuple[tuple[str, ...], str]] = []
    for group, title, where in groups:
        if where == "figure.arms":  # validated when the study was loaded; a version may lack an arm
            group = tuple(a for a in group if a in known)
            if not group:
                continue
        bad = [a for a in group if a not in known]
        if not group:
            raise ConfigError(f"names no arm; give one or more of {', '.join(known)}, comma-separated", path=where)
        if bad:
            raise ConfigError(f"{', '.join(map(repr, bad))} is not an arm of this study "
                              f"(its arms: {', '.join(known)})", path=where)
        entry = (tuple(dict.fromkeys(group)), title)
        if entry[0] not in [g for g, _ in out]:
            out.append(entry)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", str(name).lower())


def attach_reference(reference: Mapping[str, Any], settings: list[ArmSetting]) -> list[str]:
    """Put published numbers from the study's ``reference`` table beside the matching settings.

    Two shapes are recognised, matching arm names or setting labels loosely (case and punctuation
    ignored, so ``ResNet-20`` matches ``resnet20``): ``{arm: value}`` or ``{arm: {column: value}}``,
    and ``{column: {arm: value}}``. Anything else is only shown in the reference section.
    """
    by_name: dict[str, list[ArmSetting]] = {}
    for s in settings:
        for name in {_norm(s.arm), _norm(s.label)}:
            by_name.setdefault(name, []).append(s)
    columns: list[str] = []

    def put(targets: Iterable[ArmSetting], column: str, value: Any) -> None:
        for s in targets:
            s.reference[column] = value
        if column not in columns:
            columns.append(column)

    for key, value in reference.items():
        targets = by_name.get(_norm(key))
        if targets:
            if isinstance(value, Mapping):
                for column, v in value.items():
                    put(targets, str(column), v)
            else:
                put(targets, "reference", value)
        elif isinstance(value, Mapping):
            for name, v in value.items():
                if _norm(name) in by_name and not isinstance(v, Mapping):
                    put(by_name[_norm(name)], str(key), v)
    return columns


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "arm"
    if len(base) > MAX_SLUG:  # a 5,000-character arm name must not exceed the file name limit
        base = safe_name(name, fallback="arm", lower=True)
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


def draw_figures(report: Report) -> list[figs.Figure]:
    """Every figure of the report, in the order the report shows them."""
    settings = report.settings
    palette = figs.styles(settings)
    study_order = sorted(settings, key=lambda s: s.position)
    out: list[figs.Figure] = []
    has_lr_variation = len({v for r in report.runs for _, v in r.curve("lr")}) > 1
    for metric, title in figs.CURVE_METRICS:
        if metric.startswith("val_") and not report.header.has_val:
            continue
        if metric == "lr" and not has_lr_variation:
            continue
        f = figs.curve_figure(study_order, metric, title, palette)
        if f is not None:
            out.append(f)
    for split in ("test", "val"):  # runs with eval_every_steps: curves against the step
        f = step_figures.step_curve_figure(study_order, split, palette)
        if f is not None:
            out.append(f)
    baseline = next((s for s in settings if s.is_baseline), None)
    taken: set[str] = set()
    sweeps = []
    for arm, members in by_arm(study_order).items():
        slug = _slug(arm, taken)
        f = figs.arm_figure(arm, members, palette, slug, members[0].description)
        if f is not None:
            out.append(f)
        axis = numeric_axis(members)
        if axis is not None and any(s.final_test_acc.n or s.diverged_runs for s in members):
            sweeps.append(sweep_figs.sweep_figure(arm, members, axis, baseline, palette, slug,
                                                  report.header.metric))
    out += sweeps
    out += _overlays(report, palette, study_order, taken)
    for i, family in enumerate(batch_families(study_order)):
        f = sweep_figs.resources_figure(list(family.values()), report.device_is_cpu, f"resources_{i + 1}")
        if f is not None:
            out.append(f)
    out += _lr_find_figures(report, taken)
    names = report.header.class_names
    f = figs.per_class_figure(settings, names)
    if f is not None:
        out.append(f)
    best = report.best
    if best is not None:
        f = figs.confusion_figure(best, names)
        if f is not None:
            out.append(f)
    return out


def _overlays(report: Report, palette: dict[str, figs.Style], study_order: list[ArmSetting],
              taken: set[str]) -> list[figs.Figure]:
    """One figure per overlay group: the arms' sweeps on one axis when they share a numeric grid
    axis, else their curves of the study metric."""
    out = []
    groups = by_arm(study_order)
    metric = report.header.metric
    for group, given in report.overlays:
        members = {a: groups[a] for a in group if a in groups}
        axes = {numeric_axis(m) for m in members.values()}
        slug = _slug("overlay-" + "-".join(group), taken)
        names = " vs ".join(group)
        if len(axes) == 1 and None not in axes:
            axis = axes.pop()
            out.append(sweep_figs.overlay_sweep(members, axis, palette, metric, slug,
                                                given or f"{names}: {metric} against {axis}"))
            continue
        chosen = [s for m in members.values() for s in m]
        f = figs.curve_figure(chosen, metric, given or f"{names}: {metric.replace('_', ' ')}", palette,
                              ylabel=metric.replace("_", " "))
        if f is not None:
            out.append(dataclasses.replace(f, name=slug, section="overlays"))
    return out


def _lr_find_figures(report: Report, taken: set[str]) -> list[figs.Figure]:
    """One figure per stored LR range test of the study (the latest per arm and seed)."""
    from .canvas import figure
    from .lr_find import lr_find_figure

    latest = {(t.arm, t.seed): t for t in report.lr_finds}
    out = []
    for (arm, seed), t in latest.items():
        title = f"LR range test: {arm}, seed {seed}"
        fig = lr_find_figure(t.curve, t.suggestion, t.method, title)
        caption = (f"Suggested lr {t.suggestion:.3g} ({t.method})." if t.suggestion is not None
                   else f"No suggestion: {t.detail or 'the curve never fell'}.")
        caption += " Loss of each step (grey) and its debiased EMA (beta 0.98), lr growing exponentially."
        out.append(figure(_slug(f"lr-find-{arm}-seed{seed}", taken), title, caption, fig, "lr_find"))
    return out


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"html,md"`` or ``("html",)`` -> validated tuple; ``ConfigError`` for anything else."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = tuple(dict.fromkeys(f.strip().lower() for f in items if f.strip()))
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ConfigError(f"report formats are html and md, comma-separated (got {','.join(items) or 'nothing'})",
                          path="--format")
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a browser refreshing mid-write never sees half."""
    # A plain open() (not mkstemp, which makes 0600 files) so the report gets the user's umask.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(db_path: Path, study: str, out_dir: Path,
                 formats: str | Iterable[str] = FORMATS, *, version: int | None = None,
                 arms: str | Iterable[str] | None = None,
                 figure_formats: str | Iterable[str] | None = None) -> dict[str, Path]:
    """Write the study's report into ``out_dir``; returns the written files by kind.

    ``report.html`` is one self-contained file (figures embedded, no network needed);
    ``report.md`` links PNG files in ``out_dir/figures/``. Keys of the result: ``html``, ``md``
    and ``figure:NAME`` for each PNG (``figure:NAME.svg`` and so on for ``figure_formats`` beyond
    png, written to ``out_dir/figures/`` whatever the report formats). Raises ``StoreError`` when
    there is no store or no such study, ``ConfigError`` for an unknown format or arm.
    """
    fmts = parse_formats(formats)
    fig_fmts = None if figure_formats is None else parse_figure_formats(figure_formats)
    with Store(Path(db_path), readonly=True) as store:
        report = build_report(store, study, version=version, arms=arms)
    return save_report(report, out_dir, fmts, fig_fmts)


def save_report(report: Report, out_dir: Path, formats: str | Iterable[str] = FORMATS,
                figure_formats: str | Iterable[str] | None = None) -> dict[str, Path]:
    """Render an already built report into ``out_dir`` (see ``write_report``). Figure files:
    ``figure_formats`` when given, else PNG beside a Markdown report (which links them)."""
    from .render import render_html, render_markdown

    fmts = parse_formats(formats)
    files = list(parse_figure_formats(figure_formats)) if figure_formats is not None else []
    if "md" in fmts and "png" not in files:
        files.insert(0, "png")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if files:
        fig_dir = out_dir / FIGURES_DIR
        fig_dir.mkdir(exist_ok=True)
        previous, names = read_manifest(fig_dir), set()
        for f in report.figures:
            for ext in files:
                path = fig_dir / f"{f.name}.{ext}"
                _write_atomic(path, f.render(ext))
                written[f"figure:{f.name}" + ("" if ext == "png" else f".{ext}")] = path
                names.add(path.name)
        _write_atomic(fig_dir / MANIFEST, json.dumps(sorted(names)).encode("utf-8"))
        # Figures of an earlier refresh that no longer exist (an arm renamed, a sweep gone): only
        # those the manifest says a report wrote, never other files of a --dir folder.
        remove_stale(fig_dir, previous, names)
    if "md" in fmts:
        path = out_dir / "report.md"
        _write_atomic(path, render_markdown(report, FIGURES_DIR).encode("utf-8"))
        written["md"] = path
    if "html" in fmts:
        path = out_dir / "report.html"
        _write_atomic(path, render_html(report).encode("utf-8"))
        written["html"] = path
    return written
