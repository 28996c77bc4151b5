"""The ``sweeplab`` command line. Thin: each subcommand parses its arguments and calls the library.

Errors caused by the user's input (:class:`SweeplabError`) are printed as one line on stderr
with exit code 2 and no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from sweeplab.errors import SweeplabError
from sweeplab.vocabulary import FINAL_STATUSES

from .app import DataDirOpt, OutOpt, SetOpt, app, store_path
from .display import batch_progress, start_line, config_table, console, epoch_line, epoch_table, err_console

@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run config TOML file."),
    set_: Optional[list[str]] = SetOpt,
    out: Path = OutOpt,
    data_dir: Optional[Path] = DataDirOpt,
    dataset: Optional[str] = typer.Option(None, help="data.dataset"),
    model: Optional[str] = typer.Option(None, help="model.name"),
    epochs: Optional[int] = typer.Option(None, help="epochs"),
    batch_size: Optional[str] = typer.Option(None, "--batch-size", help="batch_size (an integer or 'max')"),
    lr: Optional[float] = typer.Option(None, help="optim.lr"),
    optimizer: Optional[str] = typer.Option(None, help="optim.name"),
    seed: Optional[int] = typer.Option(None, help="seed"),
    device: Optional[str] = typer.Option(None, help="device: auto, cpu, cuda, cuda:N, mps"),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain even if this exact run is already in the store."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print the full resolved config."),
) -> None:
    """Train one run and store every epoch; a run already in the store resumes or is shown.

    Without an optimizer in the config, --set or --optimizer, the run uses SGD with lr 0.05 and
    momentum 0.9 (a setting that trains every bundled dataset); a config's own ``[optim]`` keeps
    PyTorch's meaning (``name = "sgd"`` alone is plain SGD, lr 0.01).
    """
    from sweeplab.api import TRAIN_OPTIM
    from sweeplab.config import read_toml, set_path
    from sweeplab.resolve import load_run_config, run_id
    from sweeplab.config.load import parse_set, parse_value

    flags: dict[str, Any] = {}
    for key, value in [
        ("data.dataset", dataset), ("model.name", model), ("epochs", epochs), ("optim.lr", lr),
        ("optim.name", optimizer), ("seed", seed), ("device", device),
    ]:
        if value is not None:
            set_path(flags, key, value)
    if batch_size is not None:
        set_path(flags, "batch_size", parse_value(batch_size, "--batch-size"))
    if optimizer is None and "optim" not in (read_toml(config) if config else {}) and "optim" not in parse_set(set_):
        flags.setdefault("optim", {}).update({k: v for k, v in TRAIN_OPTIM.items() if k not in flags.get("optim", {})})
    cfg = load_run_config(config, set_, flags)
    shown = cfg.canonical() if verbose else _differs_from_defaults(cfg)
    title = f"run {run_id(cfg)}" + ("" if verbose else " (what differs from the defaults; --verbose for all)")
    result = _fit_with_progress(cfg, out, data_dir, fresh, config_table(shown, title=title))
    rows = result.epochs
    if rows:
        console.print(epoch_table(rows, title=f"run {result.run_id}: {result.status}"))
    if result.skipped:
        console.print(f"[yellow]run {result.run_id} is already {result.status} in {store_path(out)}; "
                      "shown from the store (--fresh retrains it)[/]")
    elif result.continuation:  # continued from a shorter run of this config, or why not
        console.print(result.continuation)
    elif result.resumed_from:
        console.print(f"resumed after epoch {result.resumed_from}")
    if result.status not in ("completed",):
        console.print(f"[bold red]{result.status}[/]: {escape(result.detail or '')}")
    console.print(f"store: {store_path(out)}")
    raise typer.Exit(0 if result.status in FINAL_STATUSES else 1)


def _differs_from_defaults(cfg) -> dict[str, Any]:
    """The resolved config's keys whose values are not the schema's defaults (model name always)."""
    from sweeplab.config import RunConfig
    from sweeplab.config.load import flatten

    default = flatten(RunConfig().canonical())
    shown = {k: v for k, v in flatten(cfg.canonical()).items() if default.get(k, object()) != v}
    return {"model.name": cfg.model.name, "data.dataset": cfg.data.dataset, **shown}


def _fit_with_progress(cfg, out, data_dir, fresh, table):
    from sweeplab.api import train

    with batch_progress() as bar:
        task = bar.add_task("epoch 1", total=None)

        def progress(event: str, info: dict[str, Any]) -> None:
            if event == "start":  # after set-up: a start-up error is not preceded by the config
                console.print(table)
                console.print(start_line(info))
            elif event == "batch":
                bar.update(task, description=f"epoch {info['epoch']}/{cfg.epochs}",
                           completed=info["step"], total=info["steps"])
            elif event == "epoch":
                console.print(epoch_line(info["epoch"], cfg.epochs, info["row"]))

        return train(cfg, out, data_dir=data_dir, fresh=fresh, progress=progress)


@app.command()
def summary(
    model: str = typer.Argument(..., help="Model name (see `sweeplab models`)."),
    dataset: str = typer.Option("cifar10", help="Dataset whose input shape and classes to use."),
    set_: Optional[list[str]] = SetOpt,
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Per-layer table, parameter counts and FLOPs per example of a model."""
    from rich.table import Table

    from sweeplab.resolve import load_run_config
    from sweeplab.models.summary import summarize_new
    from sweeplab.train.setup import make_model

    cfg = load_run_config(None, set_, {"model": {"name": model}, "data": {"dataset": dataset}})
    shape, classes, ds = _dataset_shape(cfg, data_dir)
    s = summarize_new(lambda: make_model(cfg, ds), shape, f"{model} on {dataset}")  # too big: one line
    table = Table(title=f"{model} on {dataset} (input {tuple(shape)}, {classes} classes)", header_style="bold")
    for col, just in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("params", "right")):
        table.add_column(col, justify=just)
    for name, kind, out_shape, params in s.rows:
        table.add_row(name, kind, str(tuple(out_shape)) if out_shape is not None else "-", f"{params:,}")
    console.print(table)
    console.print(f"total params: {s.total_params:,}   trainable: {s.trainable_params:,}   "
                  f"FLOPs/example: {s.flops_per_example:,.0f} ({s.flops_per_example / 1e6:,.2f} M)")


#: Input shapes of the torchvision datasets, so `summary` needs no data on disk for them.
KNOWN_SHAPES = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100),
                "mnist": ((1, 28, 28), 10), "fashion_mnist": ((1, 28, 28), 10)}


def _dataset_shape(cfg, data_dir):
    """Input shape, class count and a dataset-like object for model creation."""
    from types import SimpleNamespace

    name = cfg.data.dataset
    if name in KNOWN_SHAPES:
        shape, classes = KNOWN_SHAPES[name]
        return shape, classes, SimpleNamespace(kind="image", input_shape=shape, num_classes=classes, vocab_size=None)
    from sweeplab.data import load_dataset

    ds = load_dataset(cfg.data, data_dir, code=cfg.code)
    return ds.input_shape, ds.num_classes, ds


@app.command()
def models(
    study: Optional[str] = typer.Option(None, "--study", help="Also list the study's own models (file.py:Name)."),
) -> None:
    """List the registered models with their options (and a study's own models)."""
    from rich.table import Table

    from sweeplab.models import list_models, model_options
    from sweeplab.models.registry import describe

    table = Table(header_style="bold")
    table.add_column("model")
    table.add_column("description")
    table.add_column("options (default)")
    rows = [(name, desc, model_options(name)) for name, desc in sorted(list_models().items())]
    if study is not None:
        from sweeplab.study import load_study

        from sweeplab.study.bundled import find_study_file as resolve_study_file

        own = {r.config.model.name: r.config.code for r in load_study(resolve_study_file(study)).unique_runs()
               if r.config.code and ":" in r.config.model.name}
        rows = [(name, describe(name, code), model_options(name, code)) for name, code in own.items()] + rows
    for name, desc, options in rows:
        opts = ", ".join(f"{k}={v!r}" for k, v in options.items())
        table.add_row(escape(name), escape(desc), escape(opts) or "-")
    console.print(table)


@app.command()
def datasets() -> None:
    """List the datasets sweeplab can load."""
    from rich.table import Table

    from sweeplab.data import list_datasets

    table = Table(header_style="bold")
    table.add_column("dataset")
    table.add_column("description")
    for name, desc in sorted(list_datasets().items()):
        table.add_row(name, desc)
    console.print(table)
    console.print("CIFAR-10 offline: set SWEEPLAB_CIFAR10=/path/to/cifar10-jpeg.tar.gz (image-folder copy).")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    Errors of the user's input become one line on stderr with exit code 2: those the library
    raises (:class:`SweeplabError`) and the usage errors of the command line itself (an option's
    value of the wrong type or out of range, an unknown option), which Typer would print as a
    usage line, a hint and a box.
    """
    try:  # Typer >= 0.23 carries its own copy of Click; older Typers use Click itself
        from typer._click.exceptions import ClickException
    except ImportError:
        from click.exceptions import ClickException

    try:
        code = app(args=argv, prog_name="sweeplab", standalone_mode=False)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except ClickException as err:
        if type(err).__name__ != "NoArgsIsHelpError":  # `sweeplab` alone: the help is printed already
            err_console.print(f"[bold red]error:[/] {escape(usage_line(err))}", highlight=False, soft_wrap=True)
        return err.exit_code
    except SweeplabError as err:
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        return err.exit_code
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        return 130
    return code if isinstance(code, int) else 0


def usage_line(err: Exception) -> str:
    """A command-line usage error in one line: Typer's message, the value given when the message
    does not show it (Typer checks values with pydantic, whose error holds it), and the help."""
    message = " ".join(err.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
    errors = getattr(err.__cause__, "errors", None)
    if callable(errors):
        given = (errors() or [{}])[0].get("input")
        if given is not None and str(given) not in message:
            message += f" (got {given!r})"
    ctx = getattr(err, "ctx", None)
    return message + (f"; see {ctx.command_path} --help" if ctx is not None else "")


# The study subcommands register themselves on `app`.
from . import report_cmd, study_cmds  # noqa: E402,F401
from . import code_cmd, lr_find_cmd, serve_cmd, studies_cmd  # noqa: E402,F401


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
