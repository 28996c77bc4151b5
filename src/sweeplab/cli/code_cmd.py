"""``sweeplab show-code RUN``: the user's code a run trained with, as the store keeps it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sweeplab.errors import StoreError

from .app import OutOpt, app, store_path


@app.command("show-code")
def show_code(
    run: str = typer.Argument(..., help="Run id (a unique prefix is enough)."),
    out: Path = OutOpt,
    file: Optional[str] = typer.Option(None, "--file", help="Only this file (as the config names it)."),
) -> None:
    """Print the code files (own models, own data functions) a run was trained with."""
    from sweeplab.config import RunConfig
    from sweeplab.store import Store

    with Store(store_path(out), readonly=True) as store:
        rec = store.find_run(run)
    cfg = RunConfig.model_validate(rec.config)
    if not cfg.code:
        raise StoreError(f"run {rec.id} uses no code of yours (model {cfg.model.name!r}, dataset "
                         f"{cfg.data.dataset!r} are built in)")
    files = dict(cfg.code)
    if file is not None:
        if file not in files:
            raise StoreError(f"run {rec.id} has no code file {file!r} (it has: {', '.join(files)})", path="--file")
        files = {file: files[file]}
    for path, f in files.items():
        # A comment line per file, so the output is itself valid Python for one file.
        typer.echo(f"# {path}  sha256 {f.sha256}  (run {rec.id})")
        typer.echo(f.source, nl=not f.source.endswith("\n"))
