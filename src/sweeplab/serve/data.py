"""The studies list and a study's curves as JSON, and the cursor that keeps a page live.

Everything is read through the store's readers (``Store.study_runs``, ``Store.epochs``): no SQL
here. Curves need only the metric columns, so rows are read without their extra metrics. A study page loads the whole study once
(:func:`study_payload`); after that it polls :func:`study_updates` with the cursor it was given,
and gets only the links whose progress or outcome changed and only their new epoch rows. The
cursor is one ``<epochs done>-<status>`` token per link of the study version shown, so checking
it costs one indexed query over the links and reading the new rows costs a range scan of each
changed run's primary key: nothing proportional to the epochs already shown.
"""

from __future__ import annotations

import math
import operator
from datetime import datetime, timezone
from typing import Any

from sweeplab.report.stats import t_critical
from sweeplab.store import RUN_STATUSES, Store, StudyRunRecord
from sweeplab.vocabulary import BASELINE_ARM, detail_line, parse_detail

_INF = math.inf

#: Per-epoch scalars a study page draws, in panel order.
CURVE_METRICS: tuple[str, ...] = (
    "train_loss", "val_loss", "test_loss", "train_acc", "val_acc", "test_acc",
    "lr", "epoch_time_s", "train_images_per_s",
)
_CURVE_GETTER = operator.itemgetter(*CURVE_METRICS)


def columns(rows: list[dict[str, Any]], *, sparse: bool = False) -> dict[str, list[Any]]:
    """Epoch rows as columns (``epoch`` plus every curve metric), non-finite values as None.

    A diverged run's NaN loss is kept as None (JSON has no NaN); the run's outcome says where it
    diverged. ``sparse``: leave out the metrics the run never recorded (no validation split, say);
    a page treats a missing column as all None."""
    out: dict[str, list[Any]] = {"epoch": [r["epoch"] for r in rows]}
    if not rows:
        return out if sparse else {**out, **{m: [] for m in CURVE_METRICS}}
    # Transposed in C (itemgetter, zip): this is most of a big study's load time.
    for m, col in zip(CURVE_METRICS, zip(*map(_CURVE_GETTER, rows))):
        values = list(col)
        numbers = [v for v in values if v is not None]
        if sparse and not numbers:
            continue
        if numbers and not _all_finite(numbers):
            values = [v if isinstance(v, (int, float)) and -_INF < v < _INF else None for v in values]
        out[m] = values
    return out


def _all_finite(numbers: list[Any]) -> bool:
    """Whether every value is a finite number (fsum is nan or inf otherwise), in one C call."""
    try:
        return math.isfinite(math.fsum(numbers))
    except (OverflowError, TypeError):
        return False


def link_json(i: int, link: StudyRunRecord) -> dict[str, Any]:
    """One (arm, run) link of a study as the page sees it."""
    detail = parse_detail(link.status_detail)
    diverged = None
    if link.status == "diverged":
        e = detail.get("epoch")
        diverged = int(e) if isinstance(e, (int, float)) else link.epochs_done + 1
    return {
        "index": i, "arm": link.arm, "label": link.label or link.arm, "seed": link.seed,
        "run_id": link.run_id, "status": link.status, "detail": detail_line(link.status_detail),
        "diverged_epoch": diverged, "epochs_done": link.epochs_done, "epochs_planned": link.epochs_planned,
        "wall_time_s": link.wall_time_s,
    }


def cursor(version: int, links: list[StudyRunRecord]) -> str:
    """What the page has seen: the study version and each link's (epochs done, status), repeats
    run-length encoded (``200-2*150``: 150 links in a row with 200 epochs, completed), so the
    cursor of a big finished study stays a few characters long."""
    tokens = [f"{link.epochs_done}-{RUN_STATUSES.index(link.status)}" for link in links]
    runs: list[list[Any]] = []
    for tok in tokens:
        if runs and runs[-1][0] == tok:
            runs[-1][1] += 1
        else:
            runs.append([tok, 1])
    return f"v{version}:" + ".".join(tok if n == 1 else f"{tok}*{n}" for tok, n in runs)


def _parse_cursor(text: str, links: int) -> tuple[int, list[tuple[int, int]]] | None:
    """The cursor's version and (epochs done, status) per link; None for anything but a cursor
    of exactly ``links`` links (a query is never expanded past the study it asks about)."""
    try:
        head, _, body = text.partition(":")
        version = int(head.removeprefix("v"))
        seen: list[tuple[int, int]] = []
        for part in body.split(".") if body else []:
            tok, _, count = part.partition("*")
            done, status = (int(x) for x in tok.split("-"))
            n = int(count) if count else 1
            if not 0 <= status < len(RUN_STATUSES) or not 1 <= n <= links - len(seen):
                return None
            seen.extend([(done, status)] * n)
        return version, seen
    except ValueError:
        return None


def study_payload(store: Store, name: str) -> dict[str, Any]:
    """Everything a study page draws: the study, its arm settings in study order, its links and
    every run's curves (once per run, even when two arms share it), and the cursor."""
    record = store.get_study(name)
    links = store.study_runs(name, record.version)
    series = {}
    for link in links:  # a run shared by two arms is read once
        if link.run_id not in series:
            series[link.run_id] = columns(store.epochs(link.run_id, extra=False), sparse=True)
    return {
        "study": study_json(record), "settings": settings_json(links),
        "links": [link_json(i, link) for i, link in enumerate(links)],
        "series": series, "metrics": present_metrics(series), "cursor": cursor(record.version, links),
        "t_crit": t_table(links), "eta_s": eta_seconds(_unique(links)), "palette": palette(),
    }


def palette() -> dict[str, Any]:
    """The report's arm colours (colour-blind safe, baseline near-black), so an arm has the same
    colour in the dashboard as in its report. Imported here, not at start: it loads matplotlib."""
    from sweeplab.report.canvas import BASELINE_COLOUR, LINE_STYLES, PALETTE

    return {"colours": list(PALETTE), "baseline": BASELINE_COLOUR, "line_styles": list(LINE_STYLES)}


def _unique(links: list[StudyRunRecord]) -> list[StudyRunRecord]:
    """One link per run (a run shared by two arms trains once)."""
    return list({link.run_id: link for link in links}.values())


def t_table(links: list[StudyRunRecord]) -> dict[int, float]:
    """The report's t quantiles for every number of seeds a setting of the study can have, so a
    page draws the same 95% bands as the report without a statistics library of its own."""
    sizes: dict[tuple[str, str | None], int] = {}
    for link in links:
        sizes[(link.arm, link.label)] = sizes.get((link.arm, link.label), 0) + 1
    return {n: t_critical(n) for n in range(2, max(sizes.values(), default=1) + 1)}


def study_json(record: Any) -> dict[str, Any]:
    return {"name": record.name, "description": record.description, "metric": record.metric or "test_acc",
            "version": record.version, "versions": record.versions, "variant": record.variant,
            "updated_at": record.updated_at}


def settings_json(links: list[StudyRunRecord]) -> list[dict[str, Any]]:
    """One entry per (arm, label) in study order: what gets one line and one colour."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for link in links:
        label = link.label or link.arm
        key = (link.arm, label)
        if key not in seen:
            seen[key] = {"arm": link.arm, "label": label, "is_baseline": link.arm == BASELINE_ARM,
                         "position": len(seen)}
    return list(seen.values())


def present_metrics(series: dict[str, dict[str, list[Any]]]) -> list[str]:
    """The curve metrics with at least one value in some run (val and lr only when recorded)."""
    return [m for m in CURVE_METRICS if any(v is not None for cols in series.values() for v in cols.get(m, ()))]


def study_updates(store: Store, name: str, after: str) -> dict[str, Any]:
    """What changed since ``after``: the changed links (new progress or outcome), the new epoch
    rows of their runs, and the next cursor. ``reset`` when the cursor is of another version or
    shape (the study was saved again): the page then loads the study afresh."""
    record = store.get_study(name)
    links = store.study_runs(name, record.version)
    parsed = _parse_cursor(after, len(links))
    if parsed is None or parsed[0] != record.version or len(parsed[1]) != len(links):
        return {"reset": True, "cursor": cursor(record.version, links)}
    eta = eta_seconds(_unique(links))
    changed, series = [], {}
    status_changed = False
    for i, (link, (done, status)) in enumerate(zip(links, parsed[1])):
        if link.epochs_done == done and RUN_STATUSES.index(link.status) == status:
            continue
        changed.append(link_json(i, link))
        status_changed |= RUN_STATUSES.index(link.status) != status
        if link.epochs_done > done and link.run_id not in series:
            series[link.run_id] = columns(store.epochs(link.run_id, after=done, extra=False))
    return {"reset": False, "cursor": cursor(record.version, links), "links": changed,
            "series": series, "status_changed": status_changed, "eta_s": eta}


def studies_payload(store: Store) -> list[dict[str, Any]]:
    """Every study, newest first: runs by outcome, epochs done of planned, ETA, last update."""
    out = []
    for record in store.list_studies():
        links = store.study_runs(record.name, record.version)
        runs = _unique(links)
        outcomes: dict[str, int] = {}
        for link in runs:
            outcomes[link.status] = outcomes.get(link.status, 0) + 1
        records = store.list_runs(study=record.name, version=record.version)
        beats = [r.heartbeat_at or r.finished_at or r.created_at for r in records]
        out.append({
            **study_json(record), "runs": len(runs), "outcomes": outcomes, "arms": len(record.arms),
            "epochs_done": sum(link.epochs_done for link in runs),
            "epochs_planned": sum(link.epochs_planned or link.epochs_done for link in runs),
            "eta_s": eta_seconds(runs), "last_update": max([record.updated_at, *filter(None, beats)]),
        })
    return sorted(out, key=lambda s: s["last_update"], reverse=True)


def eta_seconds(links: list[StudyRunRecord]) -> float | None:
    """Seconds until the study's runs are done at the pace so far, for a study with running runs.

    Pace: wall time per epoch over the epochs trained so far; runs train as many at a time as are
    running now. None when nothing is running or nothing has been timed yet."""
    running = sum(1 for link in links if link.status == "running")
    timed = [link for link in links if link.epochs_done and link.wall_time_s]
    if not running or not timed:
        return None
    per_epoch = sum(link.wall_time_s for link in timed) / sum(link.epochs_done for link in timed)
    left = sum(max(0, (link.epochs_planned or 0) - link.epochs_done) for link in links
               if link.status in ("running", "pending", "interrupted"))
    return left * per_epoch / running


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
