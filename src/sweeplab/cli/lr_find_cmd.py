"""``sweeplab lr-find``: the LR range test of a study's arm or of a run config (``sweeplab.lr_find``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from sweeplab.errors import ConfigError

from .app import DataDirOpt, OutOpt, SetOpt, app, store_path
from .display import console

#: The API's parameter names that are options here: its errors are reported with the option's name.
_OPTIONS = {"arm": "--arm", "seed": "--seed", "start": "--start", "end": "--end", "steps": "--steps",
            "method": "--method", "lr_find": "STUDY/--config", "out": "--out"}


@app.command("lr-find")
def lr_find_cmd(
    study: Optional[str] = typer.Argument(None, help="Study TOML file, or the name of a bundled study."),
    arm: Optional[str] = typer.Option(None, "--arm", help="The study's arm to test (default: baseline)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A run config TOML file instead of a study."),
    seed: Optional[int] = typer.Option(None, "--seed",
                                       help="The run's seed (default: the study's first, or the config's)."),
    start: float = typer.Option(1e-7, "--start", help="First learning rate."),
    end: float = typer.Option(10.0, "--end", help="Last learning rate."),
    steps: int = typer.Option(100, "--steps", help="Training steps of the sweep (at least 10)."),
    method: str = typer.Option("valley", "--method", help="Suggestion: valley (fastai's default), steepest, minimum."),
    set_: Optional[list[str]] = SetOpt,
    out: Path = OutOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """LR range test of a study's arm or a run config: suggest a learning rate.

    A throwaway copy of the model trains while the learning rate grows exponentially from --start
    to --end (fastai / Lightning conventions: the loss smoothed by an EMA of 0.98, debiased; the
    sweep stops once it passes 4x its minimum). Prints the suggested lr, stores the curve in the
    store and plots it (PNG and SVG). No run in the store is changed.
    """
    from sweeplab.api import lr_find

    if (study is None) == (config is None):
        raise ConfigError("give a study (STUDY --arm A) or a run config (--config run.toml), one of the two",
                          path="STUDY/--config")
    source = {"study": resolve(study)} if study is not None else {"config": config}
    try:
        result = lr_find(**source, arm=arm, seed=seed, start=start, end=end, steps=steps, method=method,
                         out=out, overrides=set_, data_dir=data_dir)
    except ConfigError as err:
        if err.path in _OPTIONS:
            raise ConfigError(err.message, path=_OPTIONS[err.path]) from None
        raise
    what = f"study {result.study}, arm {result.arm}" if result.study else f"run config {config}"
    console.print(f"LR range test of {escape(what)}, seed {result.seed}: {escape(result.detail)}", soft_wrap=True)
    if result.suggestion is None:
        console.print("[bold red]no suggestion[/]: the curve gives none (why: see the line above)")
    else:
        console.print(f"suggested lr: [bold]{result.suggestion:.3g}[/] (method: {result.method})", highlight=False)
    console.print(f"plot: {result.files['png']} (and {result.files['svg'].name})", soft_wrap=True, highlight=False)
    console.print(f"stored in {store_path(out)} (lr_finds, key {result.key})", soft_wrap=True, highlight=False)


def resolve(study: str) -> Path:
    from sweeplab.study.bundled import find_study_file

    return find_study_file(study)
