"""Study subcommands: ``run``, ``status``, ``export``, ``checkpoint``."""

from __future__ import annotations

import csv
import io
import json
import time
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from sweeplab.errors import ConfigError, StoreError, SweeplabError
from sweeplab.store import Store
from sweeplab.vocabulary import FINAL_STATUSES

from .app import DataDirOpt, OutOpt, SetOpt, VersionOpt, app, pick_study, store_path
from .display import console, err_console, fmt
from .live import LiveDisplay


def resolve_study_file(study: str) -> Path:
    """A study file, or the file of a bundled study of that name (imported here: the study package
    loads torch, and a command that does not need it should start fast)."""
    from sweeplab.study.bundled import find_study_file

    return find_study_file(study)


class Executor(str, Enum):
    """``--executor``: where runs train."""

    local = "local"
    ray = "ray"


class RayData(str, Enum):
    """``--ray-data``: how a run's dataset reaches its Ray worker."""

    object_store = "object-store"
    worker = "worker"


@app.command("run")
def run_cmd(
    study: str = typer.Argument(..., help="Study TOML file, or the name of a bundled study (`sweeplab studies`)."),
    out: Path = OutOpt,
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Worker processes (default: from the device)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads per worker."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Use seeds 0..N-1 instead of the file's."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override epochs of every run."),
    set_: Optional[list[str]] = SetOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and which are done; train nothing."),
    smoke: bool = typer.Option(False, "--smoke", help="One seed, one epoch, small data subsets: a quick end-to-end check."),
    report: bool = typer.Option(False, "--report", help="Refresh the study's report after every finished run."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Write TensorBoard event files under OUT/tensorboard."),
    data_dir: Optional[Path] = DataDirOpt,
    executor: Executor = typer.Option(Executor.local, "--executor", help="Where runs train: local worker processes, or a Ray cluster."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray: join this cluster (`auto`, or host:port); default: start a Ray on this machine."),
    max_retries: Optional[int] = typer.Option(None, "--max-retries", min=0, help="Ray: restarts of a run whose worker died, from its last epoch (default 2)."),
    num_cpus: Optional[float] = typer.Option(None, "--num-cpus", min=0.01, help="Ray: CPU cores (and torch threads) per run (default 1)."),
    num_gpus: Optional[float] = typer.Option(None, "--num-gpus", min=0.0, help="Ray: GPUs per run, fractional to share one (0.25; default 0)."),
    ray_data: Optional[RayData] = typer.Option(None, "--ray-data", help="Ray: how the data reaches the runs: the driver puts it in Ray's object store once (default), or every worker loads it from its own path or cache."),
) -> None:
    """Run a study: train every run not yet finished, in parallel, resumably."""
    from sweeplab.study.execute import check_ray_study, prepare_study

    ray = _ray_options(executor, address, max_retries, num_cpus, num_gpus, ray_data)
    spec = _load_for_run(study, set_, seeds, epochs, smoke)
    ray = _with_study_resources(ray, spec, {"num_cpus": num_cpus, "num_gpus": num_gpus})
    db = store_path(out)
    if dry_run:
        _print_dry_run(spec, db, data_dir)
        return
    if tensorboard:
        _check_tensorboard()
    if report:
        _check_report_dir(out, spec.name)  # an unwritable report folder fails before anything trains
    if ray is not None:
        check_ray_study(spec, tensorboard)  # --tensorboard, a notebook-only model: before Ray starts
    with _ray_connected(ray):  # a bad --address or --num-cpus fails before the study is stored
        plan = prepare_study(spec, db, data_dir)
        _print_plan(spec, plan, db)
        on_run_end = _report_refresher(db, spec.name, out) if report else None
        results = _train(spec, plan, db, workers=workers, threads=threads, data_dir=data_dir, ray=ray,
                         tensorboard_dir=(out / "tensorboard") if tensorboard else None, on_run_end=on_run_end)
    with Store(db, readonly=True) as store:
        counts = {k: v for k, v in store.counts_by_status(spec.name, version=plan.version).items() if v}
    elsewhere = sum(1 for v in results.values() if isinstance(v, dict) and v.get("skipped"))
    console.print(f"trained {len(results) - elsewhere} runs"
                  + (f" ({elsewhere} trained by another process)" if elsewhere else "")
                  + f"; study {spec.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if report:
        _write_report(db, spec.name, out)


def _ray_options(executor: Executor, address: str | None, max_retries: int | None, num_cpus: float | None,
                 num_gpus: float | None, ray_data: RayData | None = None):
    """``RayOptions`` for ``--executor ray`` (Ray must be installed), None for the local executor."""
    share = None if ray_data is None else ray_data is RayData.object_store
    given = {"--address": address, "--max-retries": max_retries, "--num-cpus": num_cpus, "--num-gpus": num_gpus,
             "--ray-data": share}
    given = {k: v for k, v in given.items() if v is not None}
    if executor is not Executor.ray:
        if given:
            raise ConfigError(f"{next(iter(given))} is an option of --executor ray; add --executor ray or leave it out")
        return None
    from sweeplab.executor.ray_executor import RayOptions, check_reachable, require_ray

    require_ray(local=address is None)  # before anything is loaded or stored
    if address is not None:
        check_reachable(address)
    names = {"--address": "address", "--max-retries": "max_retries", "--num-cpus": "num_cpus", "--num-gpus": "num_gpus",
             "--ray-data": "share_data"}
    return RayOptions(**{names[k]: v for k, v in given.items()})


def _ray_connected(ray):
    """For --executor ray: Ray joined or started, and checked to hold a run, around the block."""
    if ray is None:
        return nullcontext()
    from sweeplab.executor.ray_executor import connected

    return connected(ray)


def _with_study_resources(ray, spec, cli: dict[str, float | None]):
    """The study's ``[study] resources`` under what ``--num-cpus``/``--num-gpus`` gave; with the local
    executor they mean nothing, which the user is told."""
    if not spec.resources:
        return ray
    if ray is None:
        console.print("note: [study] resources apply to --executor ray only; the local executor ignores them",
                      markup=False)
        return ray
    import dataclasses

    return dataclasses.replace(ray, **{k: v for k, v in spec.resources.items() if cli.get(k) is None})


def _load_for_run(study: str, set_: list[str] | None, seeds: int | None, epochs: int | None, smoke: bool):
    """The study as ``run`` trains it: the file, ``--smoke`` shrinking it, then the overrides."""
    from sweeplab.study import load_study

    path = resolve_study_file(study)
    overrides = list(set_ or [])
    if smoke:
        from sweeplab.study.smoke import smoke_overrides

        seeds = seeds or 1
        epochs = epochs or 1
        overrides = smoke_overrides(path) + overrides
    spec = load_study(path, overrides=overrides, seeds=seeds, epochs=epochs)
    for w in spec.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    return spec


def _print_dry_run(spec, db: Path, data_dir: Path | None) -> None:
    from sweeplab.study.execute import plan_study, user_code_checks
    from sweeplab.train.preflight import preflight

    preflight(user_code_checks(spec), data_dir)  # what `run` would refuse, a dry run refuses too
    store = Store(db, readonly=True) if db.exists() else None
    try:
        plan = plan_study(spec, store)
    finally:
        if store:
            store.close()
    table = Table(title=f"{spec.name}: {len(spec.runs)} links, {len(plan.runs)} unique runs, "
                        f"{len(plan.done)} done", header_style="bold")
    for col in ("arm", "label", "seed", "run id", "epochs", "status"):
        table.add_column(col)
    for r in spec.runs:
        table.add_row(escape(r.arm), escape(r.label), str(r.seed), r.run_id, str(r.config.epochs),
                      plan.status[r.run_id])
    console.print(table)


def _print_plan(spec, plan, db: Path) -> None:
    if plan.new_version and plan.versions > 1:
        console.print(f"[yellow]note:[/] study {escape(spec.name)} changed: recorded as version {plan.version} "
                      f"of {plan.versions}; "
                      + ("made with command-line overrides, so reports and exports keep showing the default "
                         f"version unless given --version {plan.version}" if spec.cli_overrides else
                         "reports and exports now show it; earlier versions keep their runs (--version N)"),
                      soft_wrap=True)
    console.print(f"study [bold]{escape(spec.name)}[/]: {len(plan.runs)} runs ({len(plan.done)} already done, "
                  f"{len(plan.todo)} to train) -> {db}")


def _report_refresher(db: Path, study: str, out: Path):
    """``run --report``: a callback that rewrites the report after a run ends, at most every
    REPORT_EVERY_S (a report takes seconds to build); a failed refresh only warns."""
    last = [0.0]

    def on_run_end(run_id: str, info: dict[str, Any]) -> None:
        if time.monotonic() - last[0] >= REPORT_EVERY_S:
            try:
                _write_report(db, study, out)
            except SweeplabError as err:  # a refresh that fails (disk full) must not stop the study
                err_console.print(f"[yellow]warning:[/] {escape(str(err))}", soft_wrap=True)
            last[0] = time.monotonic()

    return on_run_end


def _train(spec, plan, db: Path, **kwargs: Any) -> dict[str, Any]:
    """run_study under the live display; SIGTERM exits 143 (runs marked interrupted)."""
    from sweeplab.executor import Terminated
    from sweeplab.study.execute import run_study

    live = LiveDisplay(spec, plan.todo, kwargs.get("workers") or 0, plain=not console.is_terminal)
    shown = Live(live, console=console, refresh_per_second=4, transient=False) if console.is_terminal else nullcontext()
    try:
        with shown:
            return run_study(spec, db, plan=plan, on_event=live.on_event, **kwargs)
    except Terminated:  # typer would report any interrupt as 130
        err_console.print("terminated")
        raise typer.Exit(143) from None


#: Minimum seconds between report refreshes of `run --report`.
REPORT_EVERY_S = 20.0


def _write_report(db: Path, study: str, out: Path) -> None:
    from sweeplab.report.paths import report_dir

    from .outputs import write_report_to

    write_report_to(db, study, report_dir(out, study), "--report")


def _check_report_dir(out: Path, study: str) -> None:
    from sweeplab.report.paths import report_dir

    from .outputs import output_error

    target = report_dir(out, study)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error("--report", target, err, "give an --out folder where reports can be written") from None


def _check_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'sweeplab[tensorboard]'") from None


@app.command()
def status(
    study: Optional[str] = typer.Argument(None, help="Study name (default: every study)."),
    out: Path = OutOpt,
    version: Optional[int] = VersionOpt,
) -> None:
    """Studies in the store, their runs by outcome and what is left."""
    from sweeplab.store import Store

    with Store(store_path(out), readonly=True) as store:
        if study is None:
            table = Table(title=str(store_path(out)), header_style="bold")
            for col in ("study", "runs", "completed", "diverged", "failed/oom", "interrupted", "left", "updated"):
                table.add_column(col)
            for s in store.list_studies():
                c = store.counts_by_status(s.name)
                total = sum(c.values())
                left = total - c.get("completed", 0) - c.get("diverged", 0)
                table.add_row(escape(s.name), str(total), str(c.get("completed", 0)), str(c.get("diverged", 0)),
                              str(c.get("failed", 0) + c.get("oom", 0)), str(c.get("interrupted", 0)), str(left),
                              s.updated_at)
            console.print(table)
            return
        shown = store.get_study(study, version)
        rows = store.study_runs(study, shown.version)
        table = Table(title=escape(_version_note(store, shown)), header_style="bold")
        for col in ("arm", "label", "seed", "run", "status", "epochs", "wall s"):
            table.add_column(col)
        left_runs = left_epochs = 0
        for r in rows:
            if r.status not in FINAL_STATUSES:
                left_runs += 1
                left_epochs += (r.epochs_planned or 0) - r.epochs_done
            table.add_row(escape(r.arm), escape(r.label or ""), str(r.seed), r.run_id, r.status,
                          f"{r.epochs_done}/{r.epochs_planned}", fmt(r.wall_time_s, "{:,.1f}"))
        console.print(table)
        counts = {k: v for k, v in store.counts_by_status(study, version=shown.version).items() if v}
        console.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                      + f" | left: {left_runs} runs, {left_epochs} epochs")


def _csv(rows: list[dict[str, Any]]) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _version_note(store, record) -> str:
    """``study s: version 2 of 3 (...)``: which stored version a read command shows."""
    from sweeplab.store.versions import describe

    default = record.version if record.versions == 1 else store.get_study(record.name).version
    return f"study {record.name}: " + describe(record.version, record.versions, record.variant,
                                                record.version == default)


@app.command()
def export(
    study: Optional[str] = typer.Argument(None, help="Study name (default: the most recent)."),
    out: Path = OutOpt,
    format: str = typer.Option("csv", "--format", "-f", help="csv or json."),
    table: str = typer.Option("epochs", "--table", help="csv: epochs (one row per run-epoch), runs (configs "
                              "flattened) or steps (evaluations every N steps, eval_every_steps)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
    version: Optional[int] = VersionOpt,
) -> None:
    """Export a study's epoch rows (or its runs with flattened configs, or its step rows) as CSV or JSON."""
    from sweeplab.store import Store
    from sweeplab.store.export import step_table, study_results, tables_of

    if format not in ("csv", "json"):
        raise ConfigError(f"must be csv or json (got {format!r})", path="--format")
    if table not in ("epochs", "runs", "steps"):
        raise ConfigError(f"must be epochs, runs or steps (got {table!r})", path="--table")
    with Store(store_path(out), readonly=True) as store:
        name = pick_study(store, study)
        shown = store.get_study(name, version)
        linked = study_results(store, name, shown.version)
        note = _version_note(store, shown)
    epochs, runs = tables_of(linked, name)
    steps = step_table(linked, name)
    if format == "json":  # steps only where the study has them: other exports keep their shape
        text = json.dumps({"study": name, "version": shown.version, "epochs": epochs, "runs": runs,
                           **({"steps": steps} if steps else {})}, indent=1, default=str) + "\n"
    else:
        text = _csv({"epochs": epochs, "runs": runs, "steps": steps}[table])
        if table == "steps" and not steps:
            note += "; no step rows (its runs do not set eval_every_steps)"
    from .outputs import write_output, write_stdout

    if output:  # the note after the write, so that a failed write is a one-line error
        write_output(output, text.encode("utf-8"), "-o")
        err_console.print(f"{escape(note)}; wrote {escape(str(output))}", soft_wrap=True, highlight=False)
    else:
        write_stdout(text, "export")
        err_console.print(escape(note), soft_wrap=True, highlight=False)


@app.command()
def checkpoint(
    run: str = typer.Argument(..., help="Run id (a unique prefix is enough)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the state_dict (.pt)."),
    out: Path = OutOpt,
    kind: str = typer.Option("best", "--kind", help="best (by the study metric) or last."),
) -> None:
    """Write a run's best (or last) weights as a plain state_dict, with its config beside it."""
    import torch

    from sweeplab.store import Store

    if kind not in ("best", "last"):
        raise ConfigError(f"must be best or last (got {kind!r})", path="--kind")
    with Store(store_path(out), readonly=True) as store:
        rec = store.find_run(run)
        ck = store.load_checkpoint(rec.id, kind)
        if ck is None:
            raise StoreError(f"run {rec.id} has no {kind} checkpoint (status {rec.status}, {rec.epochs_done} epochs)")
        state = torch.load(io.BytesIO(ck.data), map_location="cpu", weights_only=False)
    from .outputs import write_output

    weights = io.BytesIO()
    torch.save(state["model"], weights)
    write_output(output, weights.getvalue(), "-o")
    meta = {"run_id": rec.id, "kind": kind, "epoch": ck.epoch, "status": rec.status, "config": rec.config}
    cfg_path = output.with_suffix(".json")
    write_output(cfg_path, (json.dumps(meta, indent=2) + "\n").encode("utf-8"), "-o")
    console.print(f"wrote {output} ({kind} weights of run {rec.id}, epoch {ck.epoch}) and {cfg_path}")
