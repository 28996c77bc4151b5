"""Bundled-study subcommands: ``studies`` (what ships with sweeplab) and ``show`` (a study's file).

The studies themselves live in ``src/sweeplab/studies/<name>.toml``; ``sweeplab run NAME`` runs
one by name (see ``study_cmds.resolve_study_file``).
"""

from __future__ import annotations

import sys

import typer

from sweeplab.errors import ConfigError, SweeplabError

from .app import app


def _bundled_names() -> list[str]:
    from sweeplab.study.bundled import list_bundled

    return sorted(list_bundled())


@app.command("studies")
def studies_cmd() -> None:
    """List the bundled studies: name, number of runs, what each reproduces."""
    from sweeplab.study import load_study
    from sweeplab.study.bundled import bundled_path, list_bundled

    bundled = list_bundled()
    if not bundled:
        typer.echo("no bundled studies found")
        return
    width = max(len(name) for name in bundled)
    for name, description in sorted(bundled.items()):
        try:
            spec = load_study(bundled_path(name))
        except SweeplabError as err:  # a broken file must not hide the others
            typer.echo(f"{name:<{width}}  invalid: {err}")
            continue
        runs = len(spec.unique_runs())
        configs = runs // len(spec.seeds)
        count = f"{runs} runs ({configs} x {len(spec.seeds)} seeds)"
        typer.echo(f"{name:<{width}}  {count:<24}  {description}")
    typer.echo("\nsweeplab show NAME prints a study's file; sweeplab run NAME --out DIR runs it "
               "(--smoke: a quick end-to-end check).")


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Name of a bundled study (see `sweeplab studies`)."),
) -> None:
    """Print a bundled study's TOML file, to copy and edit: sweeplab show NAME > my-study.toml"""
    from sweeplab.study.bundled import bundled_path

    path = bundled_path(name)
    if path is None:
        names = ", ".join(_bundled_names()) or "none"
        raise ConfigError(f"no bundled study {name!r} (bundled: {names})")
    # Plain stdout, not rich: the text must come out byte for byte, brackets included.
    sys.stdout.write(path.read_text(encoding="utf-8"))
