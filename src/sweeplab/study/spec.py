"""The parsed, validated and expanded form of a study file: what the executor, store and report see.

A :class:`StudySpec` is built only by :func:`sweeplab.study.load_study` / ``parse_study``; by then
every run config has been validated, so nothing downstream re-checks the file. Its ``runs`` are
the *links* (arm, grid point, seed): a run shared by two arms appears once per arm, and
:meth:`StudySpec.unique_runs` gives each run once, for scheduling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sweeplab.config import RunConfig


@dataclass(frozen=True)
class RunSpec:
    """One (arm, grid point, seed) link of a study and the run it resolves to."""

    arm: str
    """Name of the arm this link belongs to (``"baseline"`` for the study's baseline)."""
    label: str
    """Readable name: the arm name plus the grid values of this point, e.g.
    ``"lr x optimizer: optim.lr=0.1, optim.name=adam"``. The seed is not part of it."""
    seed: int
    config: RunConfig
    """The resolved config (baseline <- arm <- grid point <- command-line overrides, seed set)."""
    run_id: str
    """``sweeplab.resolve.run_id(config)``: equal configs in any arm or study are one run."""
    axes: dict[str, Any]
    """Grid values of this point, dotted key -> value (as resolved); empty for non-grid arms."""
    position: int
    """Index of this link in ``StudySpec.runs``."""


@dataclass(frozen=True)
class ArmSpec:
    """One arm as written in the study file (the baseline is an arm with an empty override)."""

    name: str
    description: str
    override: dict[str, Any]
    """The arm's run-config keys as written, lists (grid axes) included; no name/description/zip."""
    axes: list[str]
    """Dotted keys whose values vary across the arm's grid, in grid order; [] for a single config."""
    position: int
    """Index of this arm in ``StudySpec.arms``."""
    zip: bool = False
    """True when the axes are paired element-wise instead of crossed."""
    base: str | None = None
    """The arm this one builds on (``base = "bn"``): ``override`` then holds the parent's keys
    with this arm's on top, and reports compare it with its parent as well as the baseline."""


@dataclass(frozen=True)
class StudySpec:
    """A whole study: its settings, arms, and every run link in a stable order."""

    name: str
    description: str
    metric: str
    """What "best" means in reports; also every run's ``best_metric``."""
    seeds: tuple[int, ...]
    baseline: dict[str, Any]
    """The ``[baseline]`` table as written."""
    arms: tuple[ArmSpec, ...]
    runs: tuple[RunSpec, ...]
    """Every (arm, grid point, seed) link: arm order, then grid order, then seed order."""
    reference: dict[str, Any]
    """Free-form published numbers from ``[study] reference``, for reports."""
    source: str
    """The study file's text, stored so the study can be re-read exactly."""
    include_baseline: bool = True
    cli_overrides: dict[str, Any] = field(default_factory=dict)
    """Command-line overrides applied on top of the file: ``{"set": [...], "seeds": N, "epochs": N}``
    (only those given). Kept so a stored study says how its runs differ from its file."""
    warnings: tuple[str, ...] = ()
    figures: tuple[dict[str, Any], ...] = ()
    """``[[figure]]`` tables: arms the report draws together (``{"arms": [...], "title": ...}``)."""
    resources: dict[str, float] = field(default_factory=dict)
    """``[study] resources``: what each run reserves on Ray (``num_cpus``, ``num_gpus``; only those
    given). The local executor ignores them."""
    """Things worth telling the user that are not errors (grid points that command-line overrides
    merged into one run)."""

    def unique_runs(self) -> tuple[RunSpec, ...]:
        """One link per distinct run, in order of first occurrence (what the executor trains)."""
        seen: set[str] = set()
        out: list[RunSpec] = []
        for run in self.runs:
            if run.run_id not in seen:
                seen.add(run.run_id)
                out.append(run)
        return tuple(out)

    def arm(self, name: str) -> ArmSpec:
        """The arm called ``name`` (KeyError if there is none)."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def runs_of(self, arm: str) -> tuple[RunSpec, ...]:
        """The links of one arm, in grid then seed order."""
        return tuple(r for r in self.runs if r.arm == arm)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: settings, arms, links (without configs, which the store keeps
        per run) and the source text."""
        return {
            "name": self.name,
            "description": self.description,
            "metric": self.metric,
            "seeds": list(self.seeds),
            "include_baseline": self.include_baseline,
            "baseline": self.baseline,
            "arms": [
                {
                    "name": a.name,
                    "description": a.description,
                    "override": a.override,
                    "axes": list(a.axes),
                    "zip": a.zip,
                    "position": a.position,
                    **({"base": a.base} if a.base else {}),
                }
                for a in self.arms
            ],
            "runs": [
                {
                    "arm": r.arm,
                    "label": r.label,
                    "seed": r.seed,
                    "run_id": r.run_id,
                    "axes": r.axes,
                    "position": r.position,
                }
                for r in self.runs
            ],
            "reference": self.reference,
            "cli_overrides": self.cli_overrides,
            "warnings": list(self.warnings),
            "source": self.source,
            # Only when there are some, so that a study without [[figure]] keeps its stored hash.
            **({"figures": [dict(f) for f in self.figures]} if self.figures else {}),
            **({"resources": dict(self.resources)} if self.resources else {}),  # the same, for resources
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (the store's ``studies.spec_json``)."""
        # default=str: TOML dates in the free-form `reference` table are not JSON types.
        return json.dumps(self.to_dict(), default=str)
