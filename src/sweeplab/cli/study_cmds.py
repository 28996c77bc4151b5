"""Study subcommands: ``run``, ``status``, ``export``, ``checkpoint``."""

from __future__ import annotations

import csv
import io
import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from sweeplab.errors import ConfigError, StoreError, SweeplabError
from sweeplab.vocabulary import FINAL_STATUSES, detail_line

from .display import console, err_console, fmt
from .main import DataDirOpt, OutOpt, SetOpt, app, store_path
from sweeplab.study.bundled import find_study_file as resolve_study_file


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


class LiveDisplay:
    """Overall progress (runs done/total, ETA) and one line per active run.

    On a terminal it is a rich ``Live`` renderable. With ``plain=True`` (output to a file or a
    pipe, e.g. ``sweeplab run ... > log``) it prints one line per finished run instead, so a log
    of a long study shows its progress as it goes rather than only the last frame.
    """

    def __init__(self, spec, todo, workers: int, *, plain: bool = False):
        self.spec, self.workers, self.plain = spec, workers, plain
        self.labels = {r.run_id: r.label for r in todo}
        self.planned = {r.run_id: r.config.epochs for r in todo}
        self.total_runs = len(todo)
        self.total_epochs = sum(self.planned.values())
        self.done_runs = 0
        self.done_epochs = 0
        self.outcomes: dict[str, int] = {}
        self.active: dict[str, dict[str, Any]] = {}
        self.t0 = time.monotonic()
        self.lines: list[str] = []

    def on_event(self, run_id: str, event: str, info: dict[str, Any]) -> None:
        a = self.active.setdefault(run_id, {"label": self.labels.get(run_id, run_id), "epoch": 0, "step": 0})
        if event == "start":
            a.update(epochs=info["epochs"], epoch=info["resumed_from"], resumed=info["resumed_from"])
            self.done_epochs += info["resumed_from"]
        elif event == "batch":
            a.update(step=info["step"], steps=info["steps"], epoch=info["epoch"] - 1)
        elif event == "epoch":
            a.update(epoch=info["epoch"], row=info["row"], step=0)
            self.done_epochs += 1
        elif event == "end":
            finished = self.active.pop(run_id, a)
            self.done_runs += 1
            # A run that stopped early (diverged, failed) will not train its remaining epochs.
            self.total_epochs -= max(0, self.planned.get(run_id, 0) - finished["epoch"])
            self.outcomes[info["status"]] = self.outcomes.get(info["status"], 0) + 1
            detail = detail_line(info.get("detail"))
            if info["status"] != "completed":
                self.lines.append(f"{self.labels.get(run_id, run_id)} [{run_id}]: {info['status']} {detail}")
            if self.plain:
                row = finished.get("row", {})
                result = f"test acc {fmt(row.get('test_acc'), '{:.2%}')}" if info["status"] == "completed" else detail
                console.print(f"[{self.done_runs}/{self.total_runs}] {finished['label']} [{run_id}]: "
                              f"{info['status']}, {result} | {self._progress()}",
                              markup=False, highlight=False, soft_wrap=True)  # one line each, for logs

    def _progress(self) -> str:
        elapsed = time.monotonic() - self.t0
        frac = self.done_epochs / max(1, self.total_epochs)
        eta = f"{elapsed / frac * (1 - frac):,.0f}s" if frac > 0.02 else "?"
        return f"epochs {self.done_epochs}/{self.total_epochs} | {elapsed:,.0f}s elapsed, ETA {eta}"

    def __rich__(self) -> Group:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "-"
        head = (f"[bold]{escape(self.spec.name)}[/]: runs {self.done_runs}/{self.total_runs} "
                f"({outcomes}) | {self._progress()}")
        if not self.active:
            return Group(head, *[escape(x) for x in self.lines[-5:]])
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("run", "epoch", "progress", "train loss", "train acc", "test acc"):
            table.add_column(col)
        for run_id, a in list(self.active.items()):
            row = a.get("row", {})
            steps = a.get("steps")
            prog = f"{a['step']}/{steps}" if steps else ""
            table.add_row(escape(a["label"])[:60], f"{a['epoch']}/{a.get('epochs', '?')}", prog,
                          fmt(row.get("train_loss"), "{:.4f}"), fmt(row.get("train_acc"), "{:.2%}"),
                          fmt(row.get("test_acc"), "{:.2%}"))
        return Group(head, table, *[escape(x) for x in self.lines[-5:]])


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
) -> None:
    """Run a study: train every run not yet finished, in parallel, resumably."""
    from sweeplab.store import Store
    from sweeplab.study import load_study
    from sweeplab.study.execute import plan_study, prepare_study, run_study

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
    db = store_path(out)
    if dry_run:
        store = Store(db, readonly=True) if db.exists() else None
        plan = plan_study(spec, store)
        table = Table(title=f"{spec.name}: {len(spec.runs)} links, {len(plan.runs)} unique runs, "
                            f"{len(plan.done)} done", header_style="bold")
        for col in ("arm", "label", "seed", "run id", "epochs", "status"):
            table.add_column(col)
        for r in spec.runs:
            table.add_row(escape(r.arm), escape(r.label), str(r.seed), r.run_id, str(r.config.epochs),
                          plan.status[r.run_id])
        console.print(table)
        if store:
            store.close()
        return
    if tensorboard:
        _check_tensorboard()
    if report:
        _check_report_dir(out, spec.name)  # an unwritable report folder fails before anything trains
    plan = prepare_study(spec, db, data_dir)
    if plan.new_version and plan.versions > 1:
        console.print(f"[yellow]note:[/] study {escape(spec.name)} changed: recorded as version {plan.version} "
                      f"of {plan.versions}; "
                      + ("made with command-line overrides, so reports and exports keep showing the default "
                         f"version unless given --version {plan.version}" if spec.cli_overrides else
                         "reports and exports now show it; earlier versions keep their runs (--version N)"),
                      soft_wrap=True)
    console.print(f"study [bold]{escape(spec.name)}[/]: {len(plan.runs)} runs ({len(plan.done)} already done, "
                  f"{len(plan.todo)} to train) -> {db}")
    on_run_end = None
    if report:
        last = [0.0]

        def on_run_end(run_id: str, info: dict[str, Any]) -> None:
            # A report takes seconds to build; refresh at most every REPORT_EVERY_S, and at the end.
            if time.monotonic() - last[0] >= REPORT_EVERY_S:
                try:
                    _write_report(db, spec.name, out)
                except SweeplabError as err:  # a refresh that fails (disk full) must not stop the study
                    err_console.print(f"[yellow]warning:[/] {escape(str(err))}", soft_wrap=True)
                last[0] = time.monotonic()

    live = LiveDisplay(spec, plan.todo, workers or 0, plain=not console.is_terminal)
    shown = Live(live, console=console, refresh_per_second=4, transient=False) if console.is_terminal else nullcontext()
    from sweeplab.executor import Terminated

    try:
        with shown:
            results = run_study(spec, db, plan=plan, workers=workers, threads=threads, data_dir=data_dir,
                                tensorboard_dir=(out / "tensorboard") if tensorboard else None,
                                on_event=live.on_event, on_run_end=on_run_end)
    except Terminated:  # SIGTERM: runs marked interrupted; typer would report any interrupt as 130
        err_console.print("terminated")
        raise typer.Exit(143) from None
    with Store(db, readonly=True) as store:
        counts = {k: v for k, v in store.counts_by_status(spec.name, version=plan.version).items() if v}
    elsewhere = sum(1 for v in results.values() if isinstance(v, dict) and v.get("skipped"))
    console.print(f"trained {len(results) - elsewhere} runs"
                  + (f" ({elsewhere} trained by another process)" if elsewhere else "")
                  + f"; study {spec.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if report:
        _write_report(db, spec.name, out)


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
    table: str = typer.Option("epochs", "--table", help="csv: epochs (one row per run-epoch) or runs (configs flattened)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
    version: Optional[int] = VersionOpt,
) -> None:
    """Export a study's epoch rows (or its runs with flattened configs) as CSV or JSON."""
    from sweeplab.store import Store
    from sweeplab.store.export import export_tables

    if format not in ("csv", "json"):
        raise ConfigError(f"must be csv or json (got {format!r})", path="--format")
    if table not in ("epochs", "runs"):
        raise ConfigError(f"must be epochs or runs (got {table!r})", path="--table")
    with Store(store_path(out), readonly=True) as store:
        name = pick_study(store, study)
        shown = store.get_study(name, version)
        epochs, runs = export_tables(store, name, shown.version)
        note = _version_note(store, shown)
    if format == "json":
        text = json.dumps({"study": name, "version": shown.version, "epochs": epochs, "runs": runs}, indent=1,
                          default=str) + "\n"
    else:
        text = _csv(epochs if table == "epochs" else runs)
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
