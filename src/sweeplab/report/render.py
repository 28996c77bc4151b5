"""Rendering a :class:`~sweeplab.report.build.Report` as HTML and as Markdown.

Both formats come from one list of blocks (heading, paragraph, table, figure, list), so they say
the same things in the same order. The HTML is a single self-contained file: inline CSS, figures
as base64 PNG ``data:`` URIs, no script, no font, no link to anything outside the file, so it
opens offline and can be mailed or archived as is. The Markdown links its figures as PNG files in
a folder beside it, for pasting into a write-up.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Union

from sweeplab.vocabulary import lower_is_better

from .escape import md_cell as _md_cell
from .escape import md_text
from .figures import Figure
from .numbers import acc_ci, acc_pm, compact, duration, fmt, outcome_text, pval, value_text, when
from .tables import RunData

if TYPE_CHECKING:  # build imports this module when it renders; the type is only for reading
    from .build import Report

# ------------------------------------------------------------------------------------ blocks


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    text: str
    small: bool = False


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    highlight: set[int] = field(default_factory=set)
    """Indices of rows to mark (the best setting)."""
    left: int = 1
    """Number of leading columns that hold text (left-aligned); the rest are numbers."""


@dataclass
class Fig:
    figure: Figure


Block = Union[Heading, Para, Bullets, Table, Fig]


def _f(x: float | None, pattern: str) -> str:
    """A table cell: ``-`` for a missing or non-finite value."""
    return fmt(x, pattern, nonfinite="-")

# ---------------------------------------------------------------------------------- document


def document(report: Report) -> list[Block]:
    """The report as blocks, in reading order."""
    h = report.header
    blocks: list[Block] = [Heading(1, f"Study report: {h.name}")]
    if h.description:
        blocks.append(Para(h.description))
    blocks += _header(report)
    blocks += [Heading(2, "Findings", "findings"), Bullets([f.text for f in report.findings] or ["No runs yet."])]
    blocks += _comparison(report)
    if report.reference:
        blocks += _reference(report)
    sections = (("curves", "Curves"), ("sweeps", "Sweeps"), ("overlays", "Chosen arms together"),
                ("resources", "Time and memory against batch size"), ("lr_find", "LR range tests"),
                ("arms", "Arms one by one"))
    for section, title in sections:
        figs = [f for f in report.figures if f.section == section]
        if figs:
            blocks.append(Heading(2, title, section))
            for f in figs:
                if f.description:
                    blocks.append(Para(f.description))
                blocks.append(Fig(f))
    blocks += _per_class(report)
    blocks += _appendix(report)
    blocks += [Heading(2, "How the numbers are computed", "method"), Bullets(list(report.notes))]
    return blocks


def _header(report: Report) -> list[Block]:
    h = report.header
    ran = f"{when(h.started)} to {when(h.finished)}" if h.started else "not started"
    elapsed = ""
    if h.started and h.finished:
        try:
            span = (datetime.fromisoformat(h.finished) - datetime.fromisoformat(h.started)).total_seconds()
            elapsed = f"; {duration(span)} from first start to last finish"
        except ValueError:
            pass
    versions = "; ".join(
        f"{lib} " + ", ".join(f"{v} ({n} runs)" if len(vs) > 1 else v for v, n in vs.items())
        for lib, vs in h.versions.items()
    ) or "-"
    rows = [
        ["Study", h.name],
        *([["Version", h.study_version]] if getattr(h, "study_version", "") else []),
        ["Ranked by", f"final {h.metric}"],
        ["Seeds", ", ".join(map(str, h.seeds)) or "-"],
        ["Ran", ran],
        ["Training time", f"{duration(h.wall_time_s)} summed over {h.n_runs} runs{elapsed}"],
        ["Device", "; ".join(f"{d} ({n} runs)" if len(h.devices) > 1 else d for d, n in h.devices.items()) or "-"],
        ["Library versions", versions],
        ["Data", "; ".join(f"{src}, checksum {chk}" + (f" ({n} runs)" if len(h.data) > 1 else "")
                           for src, chk, n in h.data) or "-"],
        ["Runs by outcome", f"{h.n_runs} runs: {outcome_text(h.outcomes)}"],
    ]
    if getattr(h, "code", ()):  # `sweeplab show-code RUN` prints a file's text
        rows.insert(-1, ["Your code", "; ".join(f"{p} sha256 {sha[:12]} ({n} runs)" for p, sha, n in h.code)])
    if h.num_classes:
        rows.insert(3, ["Classes", str(h.num_classes)])
    if h.cli_overrides:
        rows.append(["Command-line overrides", value_text(h.cli_overrides)])
    rows.append(["Report written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")])
    return [Heading(2, "Study", "study"), Table(["", ""], rows, left=2)]


def _comparison(report: Report) -> list[Block]:
    h = report.header
    acc_metric = h.metric.endswith("acc")
    headers = ["#", "arm setting", "params", "FLOPs/example", "final test acc % (mean ± std)", "n",
               "95% CI", "best test acc % (epoch)",
               f"Δ {h.metric} vs baseline" + (" (points)" if acc_metric else ""), "Welch p",
               "final train acc %", "train − test gap (points)", "epochs to 95% of best", "s / epoch",
               "train images/s", "peak MiB", "outcomes"]
    # The column the table is sorted by, when it is not already there.
    metric_column = h.metric != "test_acc" and not (h.metric == "val_acc" and h.has_val)
    if metric_column:
        headers.insert(5, f"final {h.metric}")
    if h.has_val:
        headers += ["final val acc %", "best val acc %"]
    if h.metric != "test_acc":
        headers.append("Δ test acc vs baseline (points)")
    headers += [c if c == "reference" else f"reference: {c}" for c in report.reference_columns]
    rows, highlight = [], set()
    for i, s in enumerate(report.settings):
        if s.is_best:
            highlight.add(i)
        c = s.vs_baseline
        if s.is_baseline:
            delta, p = "(baseline)", ""
        elif c is None:
            delta, p = "-", "no baseline"
        else:
            delta = _delta(c, acc_metric)
            p = pval(c.p).replace("p=", "").replace("p<", "<") if c.p is not None else (c.note or "-")
        best = "-" if s.best_test_acc.mean is None else f"{100 * s.best_test_acc.mean:.2f} ({s.best_epoch:g})"
        row = [
            ("★ 1" if s.is_best else str(s.rank or "-")), s.label, _f(s.params, "{:,}"), compact(s.flops),
            acc_pm(s.final_test_acc), str(s.final_test_acc.n), acc_ci(s.final_test_acc), best, delta, p,
            acc_pm(s.final_train_acc), _f(None if s.gap.mean is None else 100 * s.gap.mean, "{:.2f}"),
            _f(s.epochs_to_95.mean, "{:.1f}"), _f(s.epoch_time_s.mean, "{:.3g}"), _f(s.images_per_s.mean, "{:,.0f}"),
            _f(s.peak_mem_mb.mean, "{:,.0f}"), outcome_text(s.outcomes),
        ]
        if metric_column:
            m = s.metric
            row.insert(5, acc_pm(m) if h.metric.endswith("acc") else _f(m.mean, "{:.4g}"))
        if h.has_val:
            row += [acc_pm(s.final_val_acc), acc_pm(s.best_val_acc)]
        if h.metric != "test_acc":
            row.append("(baseline)" if s.is_baseline else _delta(s.vs_baseline_test, True))
        row += [value_text(s.reference[c]) if c in s.reference else "-" for c in report.reference_columns]
        rows.append(row)
    intro = (f"One row per arm setting, over seeds; sorted by final {h.metric} "
             f"({'lower' if lower_is_better(h.metric) else 'higher'} is better), ★ marks the best. "
             "Accuracies in percent; n counts completed runs (diverged runs have no final accuracy); "
             "confidence intervals are cut to the possible range 0-100.")
    blocks: list[Block] = [Heading(2, "Comparison", "comparison"), Para(intro), Table(headers, rows, highlight, left=2)]
    return blocks + _arm_descriptions(report)


def _delta(c: Any, acc: bool) -> str:
    if c is None or c.diff is None:
        return "-"
    return _f(100 * c.diff, "{:+.2f}") if acc else _f(c.diff, "{:+.4g}")


def _arm_descriptions(report: Report) -> list[Block]:
    """What each arm is, as the study file describes it (one row per arm, in study order)."""
    seen: dict[str, Any] = {}
    for s in sorted(report.settings, key=lambda s: s.position):
        seen.setdefault(s.arm, s)
    rows = [[arm, s.base or "", s.description or "-"] for arm, s in seen.items()]
    if not any(s.description for s in seen.values()):
        return []
    return [Heading(3, "The arms", "arms-described"), Table(["arm", "builds on", "description"], rows, left=3)]


def _reference(report: Report) -> list[Block]:
    rows = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            rows.append([prefix, value_text(node)])

    walk(report.reference, "")
    text = "Published or expected numbers from the study file, as written."
    if report.reference_columns:
        text += " Those naming an arm are also shown beside its measured numbers in the comparison table."
    return [Heading(2, "Reference numbers", "reference"), Para(text), Table(["key", "value"], rows, left=2)]


def _per_class(report: Report) -> list[Block]:
    blocks: list[Block] = []
    rows_src = [s for s in report.settings if s.per_class_acc]
    fig = [f for f in report.figures if f.section == "per_class"]
    if rows_src:
        blocks.append(Heading(2, "Per-class test accuracy", "per-class"))
        blocks.append(Para("Final-epoch test accuracy of each class, mean over completed seeds, in percent."))
        blocks += [Fig(f) for f in fig]
        k = max(len(s.per_class_acc) for s in rows_src)
        if k <= 20:
            rows = [[s.label] + [f"{100 * v:.1f}" for v in s.per_class_acc] for s in rows_src]
            blocks.append(Table(["arm setting"] + [report.header.class_name(j) for j in range(k)], rows,
                                {i for i, s in enumerate(rows_src) if s.is_best}))
    conf = [f for f in report.figures if f.section == "confusion"]
    if conf:
        blocks.append(Heading(2, "Confusion matrix of the best arm setting", "confusion"))
        blocks += [Fig(f) for f in conf]
    return blocks


def _run_final(run: RunData, key: str) -> str:
    final = run.final
    return "-" if final is None or final.get(key) is None else f"{100 * final[key]:.2f}"


def _appendix(report: Report) -> list[Block]:
    rows = []
    for r in report.runs:
        diff = report.config_diff(r)
        config = ", ".join(f"{k}={value_text(v)}" for k, v in diff.items()) or "(baseline config)"
        outcome = r.status
        if r.status == "diverged":
            d = r.detail
            outcome += f" at epoch {r.diverged_epoch}" + (f", step {d['step']}" if "step" in d else "")
        elif r.status == "oom":
            outcome += f" (batch size {r.detail.get('batch_size', '?')})"
        elif r.status == "completed" and "stopped_early" in r.detail:
            outcome += f" ({r.detail['reason']})"
        elif r.status in ("failed", "interrupted") and r.status_detail:
            outcome += f": {r.status_detail.strip().splitlines()[-1][:120]}"
        if r.continued_from:  # one run family: the longer run trained on from the shorter one's end
            outcome += f"; continued from {r.continued_from}" + (
                f" (epochs 1-{r.continued_epochs} shared)" if r.continued_epochs else "")
        best = r.best("test_acc")
        rows.append([
            r.label, str(r.seed), r.run_id, outcome, f"{len(r.epochs)}/{r.epochs_planned or '?'}", config,
            _run_final(r, "test_acc"), _run_final(r, "train_acc"),
            "-" if best is None else f"{100 * best[1]:.2f} ({best[0]})", duration(r.wall_time_s),
        ])
    headers = ["arm setting", "seed", "run", "outcome", "epochs", "config (differences from the baseline)",
               "final test acc %", "final train acc %", "best test acc % (epoch)", "wall time"]
    return [Heading(2, "Appendix: every run", "runs"),
            Para("Config lists only what differs from the baseline arm's config (seed aside). "
                 "Final values exist only for completed runs."),
            Table(headers, rows, left=6)]


# -------------------------------------------------------------------------------------- HTML

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1a1a1a; margin: 0 auto; padding: 1.2em 2em 4em; max-width: 1500px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.small { color: #555; font-size: 0.9em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 3px 7px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.best td { background: #fff6d5; font-weight: 600; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; max-width: 60em; }
ul li { margin: 0.3em 0; max-width: 75em; }
nav a { margin-right: 1em; }
"""


def _h(text: str) -> str:
    return html.escape(str(text), quote=True)


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    parts = []
    blocks = document(report)
    anchors = [b for b in blocks if isinstance(b, Heading) and b.anchor]
    for b in blocks:
        if isinstance(b, Heading):
            ident = f' id="{_h(b.anchor)}"' if b.anchor else ""
            parts.append(f"<h{b.level}{ident}>{_h(b.text)}</h{b.level}>")
            if b.level == 1:
                parts.append("<nav>" + "".join(f'<a href="#{_h(a.anchor)}">{_h(a.text)}</a>' for a in anchors)
                             + "</nav>")
        elif isinstance(b, Para):
            parts.append(f'<p class="small">{_h(b.text)}</p>' if b.small else f"<p>{_h(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_h(t)}</li>" for t in b.items) + "</ul>")
        elif isinstance(b, Table):
            parts.append(_html_table(b))
        elif isinstance(b, Fig):
            f = b.figure
            data = base64.b64encode(f.png).decode("ascii")
            width = f' width="{f.width_px}"' if f.width_px else ""
            parts.append(f'<figure><img alt="{_h(f.title)}"{width} src="data:image/png;base64,{data}">'
                         f"<figcaption><b>{_h(f.title)}.</b> {_h(f.caption)}</figcaption></figure>")
    title = _h(f"sweeplab report: {report.header.name}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _html_table(t: Table) -> str:
    out = ['<div class="scroll"><table>']
    if any(t.headers):
        out.append("<thead><tr>" + "".join(f"<th>{_h(x)}</th>" for x in t.headers) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(t.rows):
        cls = ' class="best"' if i in t.highlight else ""
        cells = "".join(
            f"<td>{_h(x)}</td>" if j < t.left else f'<td class="num">{_h(x)}</td>' for j, x in enumerate(row)
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


# ---------------------------------------------------------------------------------- Markdown


def render_markdown(report: Report, figures_dir: str) -> str:
    """The report as Markdown; figures are linked as ``figures_dir/NAME.png`` (relative)."""
    lines: list[str] = []
    for b in document(report):
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + md_text(b.text), ""]
        elif isinstance(b, Para):
            lines += [f"*{md_text(b.text)}*" if b.small else md_text(b.text, line_start=True), ""]
        elif isinstance(b, Bullets):
            lines += [f"- {md_text(t)}" for t in b.items] + [""]
        elif isinstance(b, Table):
            headers = [h or " " for h in b.headers]
            lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            lines.append("|" + "|".join(":---" if j < b.left else "---:" for j in range(len(headers))) + "|")
            for i, row in enumerate(b.rows):
                cells = [_md_cell(x) for x in row]
                if i in b.highlight:
                    cells = [f"**{c}**" if c and c != "-" else c for c in cells]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        elif isinstance(b, Fig):
            f = b.figure
            lines += [f"![{md_text(f.title)}]({figures_dir}/{f.name}.png)", "", f"*{md_text(f.caption)}*", ""]
    return "\n".join(lines)

