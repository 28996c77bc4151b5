"""The ``sweeplab`` Typer app and what its commands share: the common options, the store path,
which study a read command shows. Command modules import this, never ``main``."""

from __future__ import annotations

from pathlib import Path

import typer

from sweeplab.errors import StoreError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Ablation studies of small neural networks: train, compare, report.",
)

OutOpt = typer.Option("runs", "--out", help="Directory holding the run store (sweeplab.db).")
SetOpt = typer.Option(None, "--set", help="Override a config key, e.g. --set optim.lr=1e-3 (TOML literal).")
DataDirOpt = typer.Option(None, "--data-dir", help="Where datasets live (default: $SWEEPLAB_DATA or ./data).")


def store_path(out: str | Path) -> Path:
    from sweeplab.api import store_path as path_in

    return path_in(out)


#: ``--version N`` of report, export and status: which stored version of a study to show.
VersionOpt = typer.Option(None, "--version", min=1, help="Which version of the study to show "
                          "(default: the latest run without --epochs/--seeds/--set overrides).")


def pick_study(store, name: str | None) -> str:
    """The named study, or the most recently updated one in the store."""
    studies = store.list_studies()
    if name:
        store.get_study(name)  # raises StoreError naming the unknown study
        return name
    if not studies:
        raise StoreError(f"no studies in {store.path}; run one with `sweeplab run STUDY.toml`")
    return max(studies, key=lambda s: s.updated_at).name
