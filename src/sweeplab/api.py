"""sweeplab as a library: the functions ``import sweeplab as sl`` gives a notebook or a script.

They are the CLI's own code paths (``sweeplab run`` / ``report`` / ``export`` / ``train`` call
the same functions underneath), so a study run here and one run from the terminal share the
store, resume each other's runs and report the same outcomes::

    import sweeplab as sl
    study = sl.load_study("study.toml")        # a path, a bundled name, TOML text or a dict
    sl.run(study, out="runs", workers=2)
    df = sl.epochs(study, out="runs")          # pandas DataFrame, one row per run-epoch
    runs = sl.runs(study, out="runs")          # one row per run, configs flattened
    sl.report(study, out="runs")               # report.html and report.md, as the CLI writes them
    res = sl.train({"data": {"dataset": "digits"}, "model": {"name": "mlp"}, "epochs": 5})
    lr = sl.lr_find(study=study, arm="baseline", out="runs").suggestion   # LR range test
"""

from __future__ import annotations

import ast
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas and torch load on first use, not on `import sweeplab`
    import pandas as pd

    from sweeplab.config import RunConfig
    from sweeplab.study import StudySpec
    from sweeplab.train.loop import RunResult
    from sweeplab.store import Store
    from sweeplab.train.lr_find import LrFindResult, LrFindSettings

#: The optimizer a one-off run uses when nothing names one: trains every bundled dataset
#: (``sweeplab train`` uses it too; a study's runs keep the schema's defaults).
TRAIN_OPTIM = {"name": "sgd", "lr": 0.05, "momentum": 0.9}


def store_path(out: str | Path) -> Path:
    """The store file of an output folder: ``OUT/sweeplab.db`` (the CLI's ``--out``)."""
    return Path(out) / "sweeplab.db"


def load_study(study: Any, *, overrides: list[str] | None = None, seeds: int | None = None,
               epochs: int | None = None, base_dir: str | Path | None = None) -> "StudySpec":
    """A validated, expanded study from a file path, a bundled study's name, TOML text or a dict
    of its tables; ``overrides`` are ``key=value`` strings as for ``--set``. Code files named in a
    dict or text (``"nets.py:CoolNet"``) are found under ``base_dir`` (default: the working
    directory); in a file, next to it."""
    from sweeplab.study import StudySpec, load_study as _load, parse_study, study_from_dict
    from sweeplab.study.bundled import find_study_file

    if isinstance(study, StudySpec):
        if overrides or seeds or epochs:
            raise TypeError("load_study: give overrides, seeds and epochs with the study's source, not a StudySpec")
        return study
    if isinstance(study, Mapping):
        return study_from_dict(study, overrides=overrides, seeds=seeds, epochs=epochs, base_dir=base_dir)
    if isinstance(study, str) and "\n" in study:
        return parse_study(study, overrides=overrides, seeds=seeds, epochs=epochs, base_dir=base_dir)
    return _load(find_study_file(study), overrides=overrides, seeds=seeds, epochs=epochs)


def run(study: Any, out: str | Path = "runs", *, workers: int | None = None, threads: int | None = None,
        data_dir: str | Path | None = None, progress: bool | Callable[[str, str, dict[str, Any]], None] = True,
        epochs: int | None = None, executor: str = "local", address: str | None = None) -> "pd.DataFrame":
    """Train every run of the study not yet finished (resuming any that stopped); returns
    :func:`runs` for it. ``progress``: print one line per finished run (True), nothing (False), or
    a callback ``(run_id, event, info)`` getting every event. ``epochs``: train that many instead
    (as ``sweeplab run --epochs``; a completed shorter run of the same config is continued).
    ``executor="ray"`` trains on Ray: a Ray started here, or the cluster at ``address``
    (``"auto"``), one core per run."""
    from sweeplab.errors import ConfigError
    from contextlib import nullcontext

    from sweeplab.executor.ray_executor import RayOptions, connected
    from sweeplab.study.execute import check_ray_study, prepare_study, run_study

    if executor not in ("local", "ray"):
        raise ConfigError(f"executor: {executor!r} is not one of 'local', 'ray'")
    spec = load_study(study, epochs=epochs) if epochs is not None else load_study(study)
    if executor == "local" and workers != 1 and _script_without_main_guard():
        warnings.warn("this script has no `if __name__ == \"__main__\":` guard, so worker processes (which "
                      "re-run its top level) cannot start: training in one in-process worker", stacklevel=2)
        workers = 1
    db = store_path(out)
    db.parent.mkdir(parents=True, exist_ok=True)
    ray = RayOptions(address=address) if executor == "ray" else None
    if ray is not None:
        check_ray_study(spec)
    with nullcontext() if ray is None else connected(ray):  # refused before the study is recorded
        plan = prepare_study(spec, db, data_dir)
        on_event = progress if callable(progress) else (_RunLines() if progress else None)
        if progress is True:
            print(f"study {spec.name}: {len(plan.runs)} runs ({len(plan.done)} already done, "
                  f"{len(plan.todo)} to train) -> {db}")
        run_study(spec, db, plan=plan, workers=workers, threads=threads, data_dir=data_dir, on_event=on_event,
                  ray=ray)
    return runs(spec, out, version=plan.version)


def _script_without_main_guard() -> bool:
    """True when ``__main__`` is a script file whose top level has no ``if __name__ ==
    "__main__":``: a spawned worker re-runs that top level, starting the study again in itself."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path or not str(path).endswith(".py"):
        return False  # a notebook, `python -c`, an interactive session
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    guards = (ast.unparse(n.test) for n in tree.body if isinstance(n, ast.If))
    return not any("__name__" in g and "__main__" in g for g in guards)


class _RunLines:
    """``run(progress=True)``: one printed line per finished run, with its last test accuracy."""

    def __init__(self) -> None:
        self.last: dict[str, dict[str, Any]] = {}

    def __call__(self, run_id: str, event: str, info: dict[str, Any]) -> None:
        if event == "start" and info.get("continuation"):
            print(f"run {run_id}: {info['continuation']}", flush=True)
        elif event == "epoch":
            self.last[run_id] = info.get("row") or {}
        elif event == "end":
            acc = self.last.pop(run_id, {}).get("test_acc")
            shown = f", test acc {acc:.2%}" if isinstance(acc, float) else ""
            detail = f" ({info['detail']})" if info.get("status") != "completed" and info.get("detail") else ""
            print(f"run {run_id}: {info.get('status')}{shown}{detail}", flush=True)


def _study_name_version(store: Any, study: Any, version: int | None) -> tuple[str, int]:
    """The stored study ``study`` means, and which version: the one whose definition is
    ``study`` itself when it is a study (not a name), else ``version`` or the default one."""
    from sweeplab.errors import StoreError
    from sweeplab.store.versions import spec_hash
    from sweeplab.study import StudySpec

    if isinstance(study, str) and "\n" not in study and not Path(study).is_file():
        from sweeplab.study.bundled import bundled_path

        if bundled_path(study) is None or study in {s.name for s in store.list_studies()}:
            return study, store.get_study(study, version).version  # a name in the store
    spec = study if isinstance(study, StudySpec) else load_study(study)
    if version is not None:
        return spec.name, store.get_study(spec.name, version).version
    stored = store.study_versions(spec.name)  # StoreError naming the study when it was never run
    mine = [v.version for v in stored if v.spec_hash == spec_hash(spec.to_json())]
    if not mine:  # edited since (its file or the code it names): not the results of the earlier one
        raise StoreError(f"study {spec.name!r} as defined now has not been run in {store.path} (it has "
                         f"{len(stored)} other version(s)); run it, or pass version=N or the study's name")
    return spec.name, mine[-1]


def _tables(study: Any, out: str | Path, version: int | None) -> tuple[list[dict], list[dict]]:
    from sweeplab.store import Store
    from sweeplab.store.export import export_tables

    with Store(store_path(out), readonly=True) as store:
        name, shown = _study_name_version(store, study, version)
        return export_tables(store, name, shown)


def epochs(study: Any, out: str | Path = "runs", *, version: int | None = None) -> "pd.DataFrame":
    """One row per run-epoch: study, arm, label, seed, run_id, status, epoch and every stored
    metric (``sweeplab export --table epochs`` as a DataFrame). ``study``: a study (as for
    :func:`load_study`) or the name of one in the store."""
    import pandas as pd

    return pd.DataFrame(_tables(study, out, version)[0])


def runs(study: Any, out: str | Path = "runs", *, version: int | None = None) -> "pd.DataFrame":
    """One row per run of the study: arm, label, seed, status, parameters, FLOPs, timing and the
    config flattened into ``config.*`` columns (``sweeplab export --table runs``)."""
    import pandas as pd

    return pd.DataFrame(_tables(study, out, version)[1])


def steps(study: Any, out: str | Path = "runs", *, version: int | None = None) -> "pd.DataFrame":
    """One row per evaluation of the study's runs with ``eval_every_steps``: arm, label, seed,
    run_id, status, step, epoch and the step metrics (``sweeplab export --table steps``)."""
    import pandas as pd

    from sweeplab.store import Store
    from sweeplab.store.export import export_steps

    with Store(store_path(out), readonly=True) as store:
        name, shown = _study_name_version(store, study, version)
        return pd.DataFrame(export_steps(store, name, shown))


def report(study: Any, out: str | Path = "runs", *, output_dir: str | Path | None = None,
           formats: str | Iterable[str] = ("html", "md"), version: int | None = None,
           arms: str | Iterable[str] | None = None,
           figure_formats: str | Iterable[str] | None = None) -> dict[str, Path]:
    """Write the study's report (default ``OUT/reports/STUDY``); returns the files by kind
    (``html``, ``md``, ``figure:NAME``), exactly as ``sweeplab report`` writes them. ``arms``
    (``"rnn,lstm"``) adds a figure of those arms together; ``figure_formats`` (``"png,svg,pdf"``)
    the figure files to write, as ``--arms`` and ``--figure-format``."""
    from sweeplab.report import write_report
    from sweeplab.report.paths import report_dir
    from sweeplab.store import Store

    with Store(store_path(out), readonly=True) as store:
        name, shown = _study_name_version(store, study, version)
    target = Path(output_dir) if output_dir is not None else report_dir(Path(out), name)
    return write_report(store_path(out), name, target, formats, version=shown, arms=arms,
                        figure_formats=figure_formats)


def run_config(config: Any, overrides: list[str] | None = None, base_dir: str | Path | None = None) -> "RunConfig":
    """A validated run config from a dict (as in a run config TOML), a TOML file or a RunConfig;
    without an optimizer named, :data:`TRAIN_OPTIM`."""
    from sweeplab.config import RunConfig, deep_merge, parse_set, read_toml
    from sweeplab.resolve import build_run_config, load_run_config

    if isinstance(config, RunConfig):
        return config if not overrides else build_run_config(deep_merge(config.canonical(), parse_set(overrides)),
                                                             base_dir=base_dir)
    if isinstance(config, Mapping):
        data = dict(config)
        if "optim" not in data and "optim" not in parse_set(overrides):
            data["optim"] = dict(TRAIN_OPTIM)
        return build_run_config(deep_merge(data, parse_set(overrides)), base_dir=base_dir)
    extra = None if "optim" in read_toml(config) or "optim" in parse_set(overrides) else {"optim": TRAIN_OPTIM}
    return load_run_config(config, overrides, extra)


def train(config: Any, out: str | Path = "runs", *, overrides: list[str] | None = None,
          data_dir: str | Path | None = None, fresh: bool = False,
          progress: Callable[[str, dict[str, Any]], None] | None = None) -> "RunResult":
    """Train (or resume, or show from the store) one run; its epochs are stored in ``OUT``.

    Returns the run's result: ``run_id``, ``status``, ``detail`` and ``epochs`` (one dict per
    epoch). ``fresh`` retrains a run already in the store. A run another process is training is
    left to it, and its result returned once it is done.
    """
    from sweeplab.store import Store
    from sweeplab.resolve import run_id
    from sweeplab.store import default_worker_id
    from sweeplab.study.sharing import wait_for_others
    from sweeplab.train.loop import fit, record_run
    from sweeplab.train.preflight import preflight

    cfg = run_config(config, overrides)
    preflight([cfg], data_dir)
    db = store_path(out)
    db.parent.mkdir(parents=True, exist_ok=True)
    with Store(db) as store:
        if fresh:
            store.forget_run(run_id(cfg))
        record_run(store, cfg)
        result = fit(cfg, store, data_dir=data_dir, progress=progress)
    # Another process trains it: its result, as a study waits (never for a run this process holds).
    while result.skipped and result.status == "running" and result.detail != f"trained by {default_worker_id()}":
        wait_for_others(db, [result.run_id])
        with Store(db) as store:  # finished there, or given up (then it is resumed here)
            result = fit(cfg, store, data_dir=data_dir, progress=progress)
    return result


def lr_find(config: Any = None, *, study: Any = None, arm: str | None = None, seed: int | None = None,
            start: float = 1e-7, end: float = 10.0, steps: int = 100, method: str = "valley",
            out: str | Path = "runs", overrides: list[str] | None = None, data_dir: str | Path | None = None,
            save: bool = True) -> "LrFindResult":
    """LR range test of a run config, or of an arm of a study (``study=..., arm=...``; default
    the baseline), following the fastai / Lightning conventions (see :mod:`sweeplab.train.lr_find`):
    the lr grows exponentially from ``start`` to ``end`` over ``steps`` steps on a fresh model
    that is thrown away after; the test stops when the smoothed loss passes 4x its minimum.

    Returns the curve (``lrs``, ``losses``, ``smoothed``), the ``suggestion`` and its ``method``
    (``valley``, fastai's default; ``steepest``; ``minimum``, the lr of the lowest loss / 10).
    ``save``: store the test in ``OUT/sweeplab.db`` (table ``lr_finds``; the same test again
    replaces its row) and write its plot to ``OUT/lr_find/`` as PNG and SVG (``result.files``).
    No run in the store is read or changed. ``seed``: the run's seed (default: the config's, or
    the study's first).
    """
    from sweeplab.errors import ConfigError
    from sweeplab.train.lr_find import LrFindSettings
    from sweeplab.train.preflight import preflight

    settings = LrFindSettings(start=start, end=end, steps=steps, method=method)
    settings.check()
    if (config is None) == (study is None):
        raise ConfigError("give a run config or a study (with its arm), not both and not neither", path="lr_find")
    if study is not None:
        cfg, study_name, arm = _arm_config(load_study(study, overrides=overrides), arm, seed)
    else:
        if arm is not None:
            raise ConfigError("an arm belongs to a study: give study=... with arm", path="arm")
        cfg, study_name = run_config(config, overrides), None
        if seed is not None:
            cfg = _with_seed(cfg, seed)
    preflight([cfg], data_dir)
    if not save:
        return _range_test(cfg, settings, data_dir, study_name, arm)
    out = Path(out)
    with _lr_find_store(out) as store:
        result = _range_test(cfg, settings, data_dir, study_name, arm)
        _save_lr_find(store, result, cfg, out)
    return result


def _range_test(cfg: "RunConfig", settings: "LrFindSettings", data_dir: str | Path | None, study_name: str | None,
                arm: str | None) -> "LrFindResult":
    from sweeplab.train.lr_find import lr_find_key, range_test

    result = range_test(cfg, settings, data_dir=data_dir)
    result.key, result.study, result.arm = lr_find_key(cfg, settings, study_name, arm), study_name, arm
    return result


def _with_seed(cfg: "RunConfig", seed: int) -> "RunConfig":
    from sweeplab.config.load import validate_run_config
    from sweeplab.config.schema import MAX_SEED
    from sweeplab.errors import ConfigError

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"must be an integer in [0, 2**32 - 1] (got {seed!r})", path="seed")
    return validate_run_config({**cfg.canonical(), "seed": seed}, "")


def _arm_config(spec: "StudySpec", arm: str | None, seed: int | None) -> tuple["RunConfig", str, str]:
    """The config an arm's run of ``seed`` trains with (its first grid point for a grid arm)."""
    from sweeplab.errors import ConfigError
    from sweeplab.vocabulary import BASELINE_ARM

    names = [a.name for a in spec.arms]
    arm = BASELINE_ARM if arm is None and BASELINE_ARM in names else arm
    if arm is None:
        raise ConfigError(f"study {spec.name!r} has no baseline arm: name one (arms: {', '.join(names)})", path="arm")
    links = spec.runs_of(arm)
    if not links:
        raise ConfigError(f"no arm {arm!r} in study {spec.name!r} (arms: {', '.join(names)})", path="arm")
    first = links[0]
    if seed is None:
        return first.config, spec.name, arm
    same_point = [r for r in links if r.axes == first.axes and r.seed == seed]
    return (same_point[0].config if same_point else _with_seed(first.config, seed)), spec.name, arm


def _lr_find_store(out: Path) -> "Store":
    """The store an LR range test is saved in, opened (and so checked: a foreign file, a newer
    schema, a read-only folder) and the plots' folder made before the sweep trains: an ``out``
    that cannot take the test refuses it before any work or file (``ConfigError`` naming ``out``,
    or the store's own ``StoreError``)."""
    from sweeplab.errors import ConfigError
    from sweeplab.store import Store

    db, folder = store_path(out), out / "lr_find"
    store = Store(db) if db.exists() else None  # a file that is not a run store fails before the folder is made
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if store is not None:
            store.close()
        raise ConfigError(f"cannot write the plots to {str(folder)!r} ({err.strerror or err}); "
                          "give a folder that can be written", path="out") from None
    return store if store is not None else Store(db)


def _save_lr_find(store: "Store", result: "LrFindResult", cfg: "RunConfig", out: Path) -> None:
    """Plot the test, then store it: a row in ``lr_finds`` is written last, so it exists only
    for a test whose plot was written too."""
    from sweeplab.errors import ConfigError
    from sweeplab.report.lr_find import lr_find_figure, save_lr_find_figure
    from sweeplab.report.paths import safe_name
    from sweeplab.resolve import run_id

    what = f"{result.study} / {result.arm}" if result.study else f"run {run_id(cfg)}"
    title = f"LR range test: {what}, seed {result.seed}"
    name = safe_name(f"{result.study}-{result.arm}" if result.study else f"run-{run_id(cfg)}", fallback="lr-find")
    fig = lr_find_figure(result.curve(), result.suggestion, result.method, title)
    try:
        result.files = save_lr_find_figure(fig, out / "lr_find" / f"{name}-seed{result.seed}-{result.key[:8]}")
    except OSError as err:  # a disk that filled up during the test
        raise ConfigError(f"cannot write the plots to {str(out / 'lr_find')!r} ({err.strerror or err})",
                          path="out") from None
    store.save_lr_find(result.key, study=result.study, arm=result.arm, config_json=cfg.to_json(),
                       seed=result.seed, curve_json=result.curve(), suggestion=result.suggestion,
                       method=result.method, detail=result.detail)
