"""The ``report`` subcommand: write a study's HTML and Markdown report from the run store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .display import console
from .app import OutOpt, VersionOpt, app, pick_study, store_path


@app.command()
def report(
    study: Optional[str] = typer.Argument(None, help="Study name (default: the most recently updated)."),
    out: Path = OutOpt,
    format: str = typer.Option("html,md", "--format", help="Comma-separated: html (one self-contained "
                               "file), md (Markdown with PNG figures beside it)."),
    output_dir: Optional[Path] = typer.Option(None, "--dir", help="Where to write the report "
                                              "(default: OUT/reports/STUDY)."),
    version: Optional[int] = VersionOpt,
    arms: Optional[str] = typer.Option(None, "--arms", help="Comma-separated arms to draw together in one "
                                       "more figure (e.g. rnn,lstm), besides the study's [[figure]] tables."),
    figure_format: Optional[str] = typer.Option(None, "--figure-format", help="Comma-separated figure files "
                                                "for figures/: png (200 dpi), svg, pdf (vector, for LaTeX); "
                                                "default: png beside report.md."),
) -> None:
    """Write a study's report: curves, comparison table with statistics, findings, per-run appendix."""
    from sweeplab.report import parse_formats
    from sweeplab.report.canvas import parse_figure_formats
    from sweeplab.report.paths import report_dir
    from sweeplab.store import Store

    from .outputs import write_report_to

    formats = parse_formats(format)  # bad formats fail before the store is opened
    figure_formats = None if figure_format is None else parse_figure_formats(figure_format)
    db = store_path(out)
    with Store(db, readonly=True) as store:
        name = pick_study(store, study)
        store.get_study(name, version)  # an unknown --version fails before anything is written
    target = output_dir if output_dir is not None else report_dir(out, name)  # names are not paths
    written = write_report_to(db, name, target, "--dir" if output_dir is not None else "--out", formats,
                              version=version, arms=arms, figure_formats=figure_formats)
    for kind in ("html", "md"):
        if kind in written:
            console.print(f"wrote {escape(str(written[kind]))}")
    figures = len({k.split(".")[0] for k in written if k.startswith("figure:")})
    if figures:
        console.print(f"      {figures} figures in {escape(str(target / 'figures'))}")
