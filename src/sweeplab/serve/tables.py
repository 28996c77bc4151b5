"""The report's numbers as JSON: the comparison table, the sweeps, one run, several runs compared.

The table is computed by the report's own code (``report.tables.load_runs``, ``group_settings``,
``rank_settings``; statistics from ``report.stats``), so the dashboard and ``sweeplab report``
cannot disagree. A page asks for it once and again only when a run's outcome changes (the
table's accuracy columns are over completed runs, so nothing else moves them).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sweeplab.config.load import flatten
from sweeplab.report.stats import ALPHA, CONFIDENCE, Comparison, Summary, spans_decades
from sweeplab.report.tables import (
    ArmSetting, by_arm, config_diff, group_settings, load_runs, numeric_axis, rank_settings, reference_config,
)
from sweeplab.store import Store
from sweeplab.vocabulary import detail_line

from .data import columns, link_json, palette, settings_json


def summary_json(s: Summary) -> dict[str, Any]:
    return {"n": s.n, "mean": s.mean, "std": s.std, "ci_low": s.ci_low, "ci_high": s.ci_high}


def comparison_json(c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"diff": c.diff, "p": c.p, "significant": c.significant, "note": c.note}


def setting_row(s: ArmSetting) -> dict[str, Any]:
    return {
        "label": s.label, "arm": s.arm, "is_baseline": s.is_baseline, "rank": s.rank,
        "outcomes": s.outcomes, "metric": summary_json(s.metric),
        "final_test_acc": summary_json(s.final_test_acc), "best_test_acc": summary_json(s.best_test_acc),
        "epoch_time_s": summary_json(s.epoch_time_s), "vs_baseline": comparison_json(s.vs_baseline),
        "params": s.params,
    }


def table_payload(store: Store, name: str) -> dict[str, Any]:
    """The comparison table (rows in table order: best by the study metric first) and the sweep
    view of every arm with one numeric grid axis."""
    record = store.get_study(name)
    metric = record.metric or "test_acc"
    runs = load_runs(store, name, record.version, extra="final")
    settings = rank_settings(group_settings(runs, record.spec), metric)
    return {"metric": metric, "alpha": ALPHA, "confidence": CONFIDENCE,
            "rows": [setting_row(s) for s in settings], "sweeps": sweeps(settings, metric)}


def sweeps(settings: list[ArmSetting], metric: str) -> list[dict[str, Any]]:
    """Per arm with one numeric grid axis: the study metric's final mean and 95% interval at each
    value, and whether the axis should be logarithmic (values spanning more than a decade)."""
    out = []
    for arm, members in by_arm(sorted(settings, key=lambda s: s.position)).items():
        axis = numeric_axis(members)
        if axis is None:
            continue
        points = sorted(({"x": s.axes[axis], "label": s.label, **summary_json(s.metric)} for s in members),
                        key=lambda p: p["x"])
        xs = [p["x"] for p in points]
        out.append({"arm": arm, "axis": axis, "metric": metric, "log_x": spans_decades(xs, 1.0)
                    and all(x > 0 for x in xs), "points": points})
    return out


def _studies_of(store: Store, run_id: str) -> list[tuple[str, list[Any]]]:
    """(study, its links) for every study whose default version links the run."""
    out = []
    for record in store.list_studies():
        links = store.study_runs(record.name, record.version)
        if any(link.run_id == run_id for link in links):
            out.append((record.name, links))
    return out


def run_payload(store: Store, prefix: str) -> dict[str, Any]:
    """One run: outcome, what its config changes from its study's baseline, the full config,
    its curves, per-class accuracy and confusion matrix of every epoch that has them."""
    rec = store.find_run(prefix)
    rows = store.epochs(rec.id)
    studies = _studies_of(store, rec.id)
    diff, study, link, settings = None, None, None, []
    if studies:
        study, links = studies[0]
        settings = settings_json(links)  # the page colours the run as its arm is coloured in the study
        link = next(link_json(i, lk) for i, lk in enumerate(links) if lk.run_id == rec.id)
        configs = {lk.run_id: lk for lk in links}
        members = [SimpleNamespace(arm=lk.arm, config=store.get_run(lk.run_id).config)
                   for lk in configs.values() if lk.arm == "baseline"][:1]
        if not members:
            members = [SimpleNamespace(arm=lk.arm, config=r.config)
                       for lk in configs.values() for r in [store.get_run(lk.run_id)]]
        diff = config_diff(rec.config, reference_config(members))  # type: ignore[arg-type]
    per_epoch = [{"epoch": r["epoch"], "per_class_acc": r.get("test_per_class_acc"),
                  "confusion": r.get("test_confusion")} for r in rows if r.get("test_confusion") or
                 r.get("test_per_class_acc")]
    classes = rec.env.get("class_names") or rec.env.get("classes")
    return {
        "run_id": rec.id, "status": rec.status, "detail": detail_line(rec.status_detail),
        "seed": rec.seed, "label": rec.label, "epochs_done": rec.epochs_done, "epochs_planned": rec.epochs_planned,
        "wall_time_s": rec.wall_time_s, "params": rec.params, "device": rec.device,
        "started_at": rec.started_at, "finished_at": rec.finished_at,
        "study": study, "link": link, "settings": settings, "palette": palette(),
        "studies": [name for name, _ in studies],
        "config_diff": diff, "config": flatten(rec.config), "series": columns(rows),
        "per_class": per_epoch, "class_names": classes if isinstance(classes, list) else None,
        "checkpoint_command": f"sweeplab checkpoint {rec.id} --kind best -o {rec.id}-best.pt",
    }


def compare_payload(store: Store, ids: list[str]) -> dict[str, Any]:
    """Two or more runs from any studies: their curves and their configs, keys that differ first."""
    runs = [store.find_run(i) for i in ids]
    configs = [flatten(r.config) for r in runs]
    keys = sorted({k for c in configs for k in c})
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    return {
        "runs": [{"run_id": r.id, "label": r.label, "seed": r.seed, "status": r.status,
                  "series": columns(store.epochs(r.id, extra=False))} for r in runs],
        "differ": differ, "same": [k for k in keys if k not in differ],
        "configs": [{k: c.get(k) for k in keys} for c in configs],
    }
