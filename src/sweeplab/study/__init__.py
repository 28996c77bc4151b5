"""Declarative ablation studies: a TOML file of baseline + arms (+ grids) + seeds, parsed,
validated and expanded into run configs before anything trains.

``load_study(path)`` gives a :class:`StudySpec` whose ``runs`` are every (arm, grid point, seed)
link with its resolved :class:`~sweeplab.config.RunConfig` and run id; ``unique_runs()`` gives
each distinct run once. See ``sweeplab.study.load`` for the file format's rules and the order in
which command-line overrides apply.
"""

from sweeplab.vocabulary import METRICS

from .load import load_study, parse_study, study_from_dict
from .spec import ArmSpec, RunSpec, StudySpec

__all__ = ["METRICS", "ArmSpec", "RunSpec", "StudySpec", "load_study", "parse_study", "study_from_dict"]
