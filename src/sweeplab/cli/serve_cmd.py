"""The ``serve`` subcommand: the live dashboard over the run store (see ``sweeplab.serve``)."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import OutOpt, app, store_path


@app.command()
def serve(
    out: Path = OutOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (anything but loopback "
                             "lets others on the network read the store)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
) -> None:
    """Open the live dashboard: studies, curves with 95% bands, the report's table, runs, comparisons.

    Read-only: it never writes to the store, and it keeps up while `sweeplab run` trains.
    """
    from sweeplab.serve import serve as run_server

    from .display import console

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    try:
        run_server(store_path(out), host, port, say=say)
    except KeyboardInterrupt:
        pass
