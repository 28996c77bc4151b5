"""The report's header: what the study was and how it ran, from the stored study and its runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tables import RunData


@dataclass(frozen=True)
class Header:
    """What the study was and how it ran: the report's opening lines."""

    name: str
    description: str
    metric: str
    seeds: tuple[int, ...]
    started: str | None
    finished: str | None
    wall_time_s: float
    """Training time summed over the study's distinct runs (resumed sessions add up)."""
    devices: dict[str, int]
    """Device (GPU name or CPU model) -> number of runs trained on it."""
    versions: dict[str, dict[str, int]]
    """Library -> version -> number of runs (several versions mean the study mixed them)."""
    data: list[tuple[str, str, int]]
    """(data source, checksum, number of runs) for each distinct dataset used."""
    outcomes: dict[str, int]
    """Status -> number of distinct runs."""
    n_runs: int
    cli_overrides: dict[str, Any]
    has_val: bool
    num_classes: int | None
    study_version: str = ""
    """Which stored version of the study this is: ``version 2 of 3 (...)`` (store/versions.py)."""
    code: tuple[tuple[str, str, int], ...] = ()
    """(file, sha256, number of runs) for each of the user's code files the runs used."""
    class_names: tuple[str, ...] = ()
    """The dataset's class names, in label order, when the runs recorded them (else empty)."""

    def class_name(self, j: int) -> str:
        """Class ``j`` as the report writes it: its name, else ``class j``."""
        return self.class_names[j] if j < len(self.class_names) else f"class {j}"


#: Environment keys shown as library versions in the header, in this order.
VERSION_KEYS = ("sweeplab", "python", "torch", "torchvision", "numpy")


def make_header(record: Any, runs: list[RunData]) -> Header:
    """The header from the stored study record and its runs (distinct runs counted once)."""
    spec = record.spec
    unique = list({r.run_id: r for r in runs}.values())
    devices: dict[str, int] = {}
    versions: dict[str, dict[str, int]] = {}
    data: dict[tuple[str, str], int] = {}
    outcomes: dict[str, int] = {}
    code: dict[tuple[str, str], int] = {}
    for r in unique:
        outcomes[r.status] = outcomes.get(r.status, 0) + 1
        if r.device:
            devices[r.device] = devices.get(r.device, 0) + 1
        for key in VERSION_KEYS:
            if r.env.get(key):
                slot = versions.setdefault(key, {})
                slot[str(r.env[key])] = slot.get(str(r.env[key]), 0) + 1
        for path, f in (r.config.get("code") or {}).items():
            code[(path, f["sha256"])] = code.get((path, f["sha256"]), 0) + 1
        if r.data_source or r.data_checksum:
            pair = (r.data_source or "?", r.data_checksum or "?")
            data[pair] = data.get(pair, 0) + 1
    starts = [r.started_at for r in unique if r.started_at]
    ends = [r.finished_at for r in unique if r.finished_at]
    has_val = any(row.get("val_acc") is not None for r in unique for row in r.epochs)
    ks = {len(row["test_per_class_acc"]) for r in unique for row in r.epochs[-1:]
          if isinstance(row.get("test_per_class_acc"), list)}
    return Header(
        name=record.name, description=record.description or spec.get("description", ""),
        metric=record.metric or spec.get("metric") or "test_acc", seeds=tuple(spec.get("seeds", ())),
        started=min(starts) if starts else None, finished=max(ends) if ends else None,
        wall_time_s=sum(r.wall_time_s for r in unique), devices=devices, versions=versions,
        data=[(s, c, n) for (s, c), n in data.items()], outcomes=outcomes, n_runs=len(unique),
        cli_overrides=dict(spec.get("cli_overrides") or {}), has_val=has_val,
        num_classes=max(ks) if ks else None, code=tuple((p, h, n) for (p, h), n in code.items()),
        class_names=next((tuple(map(str, r.env["classes"])) for r in unique if isinstance(r.env.get("classes"), list)),
                         ()),
    )
