"""Resolving run configs: from the tables of study and config files to validated runs with an id.

``sweeplab.config`` knows the schema and nothing else. What needs the registries is here: the
user's code files read into the config, dataset and model names and the model's own options
checked against the registries, and the run's identity, which writes the model's option
defaults out (``{name = "lstm"}`` and ``{name = "lstm", hidden = 128}`` are one run). The study
and train layers call this; config imports nothing from models or data, models nothing from config.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweeplab.config import RunConfig, deep_merge, parse_set, read_toml
from sweeplab.config.load import validate_run_config
from sweeplab.data import list_datasets
from sweeplab.errors import ConfigError
from sweeplab.models import list_models, model_identity, model_options, probe_options
from sweeplab.usercode import attach_code, parse_ref

__all__ = ["build_run_config", "check_model_options", "identity", "load_run_config", "run_id"]


def build_run_config(data: Mapping[str, Any], prefix: str = "", base_dir: str | Path | None = None) -> RunConfig:
    """Validate a nested dict into a RunConfig, including the model's own options.

    A model or dataset named as ``"nets.py:CoolNet"`` brings the file's text into the config's
    ``code``; the file is looked for under ``base_dir`` (the directory of the study or config
    file; the working directory when None).
    """
    try:
        data = attach_code(data, base_dir)
    except ConfigError as e:
        raise ConfigError(e.message, path=f"{prefix}.{e.path}" if prefix and e.path else e.path) from None
    cfg = validate_run_config(data, prefix)
    check_model_options(cfg, prefix)
    return cfg


def load_run_config(
    path: str | Path | None = None, overrides: list[str] | None = None, extra: Mapping[str, Any] | None = None
) -> RunConfig:
    """File (optional) <- ``extra`` (e.g. CLI flags) <- ``--set`` overrides, then validate.

    Code files (``model.name = "nets.py:CoolNet"``) are relative to the config file, or to the
    working directory without one.
    """
    data: dict[str, Any] = read_toml(path) if path else {}
    if "study" in data or "baseline" in data:  # a study file given where one run's config goes
        raise ConfigError(f"{path} is a study file ([study]/[baseline] tables), not one run's config: "
                          f"give it as a study (`sweeplab run {path}`, `sweeplab lr-find {path}`)", path="--config")
    if extra:
        data = deep_merge(data, extra)
    data = deep_merge(data, parse_set(overrides))
    return build_run_config(data, base_dir=Path(path).parent if path else None)


def check_model_options(cfg: RunConfig, prefix: str = "") -> None:
    """Reject datasets, model names, model options and option values the registries do not know."""
    datasets = list_datasets()
    if parse_ref(cfg.data.dataset) is None and cfg.data.dataset not in datasets:
        raise ConfigError(f"unknown dataset {cfg.data.dataset!r} (available: {', '.join(sorted(datasets))})",
                          path=f"{prefix}.data.dataset" if prefix else "data.dataset")
    where = f"{prefix}.model" if prefix else "model"
    models = list_models()
    if parse_ref(cfg.model.name) is None and cfg.model.name not in models:
        raise ConfigError(
            f"unknown model {cfg.model.name!r} (available: {', '.join(sorted(models))}, or file.py:Name "
            "for your own)", path=f"{where}.name"
        )
    try:
        allowed = model_options(cfg.model.name, cfg.code)
    except ConfigError as e:  # the user's code failed to load: its message names file and line
        raise ConfigError(e.message, path=f"{prefix}.{e.path}" if prefix and e.path else e.path) from None
    for key in cfg.model.options():
        if key not in allowed:
            opts = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(
                f"unknown option for model {cfg.model.name!r} (allowed: {opts}, init, init_std)",
                path=f"{where}.{key}",
            )
    if parse_ref(cfg.model.name) is None:  # the user's models are checked on the real data (train.preflight)
        _check_option_values(cfg.model.name, json.dumps(cfg.model.options(), sort_keys=True), prefix)


@functools.lru_cache(maxsize=256)
def _check_option_values(name: str, options_json: str, prefix: str) -> None:
    """Build the model on the meta device (no memory, no compute) so that option values such as
    ``hidden = "wide"`` or ``activation = "relu6"`` fail here with their key, not as failed runs.

    Only the model's own option errors count: a nominal input shape stands in for the dataset's,
    so shape problems are left to the run, which knows the real shape.
    """
    try:
        probe_options(name, json.loads(options_json))
    except ConfigError as e:
        path = e.path or ""
        if not path.startswith("model.") or path == "model.name":
            return
        raise ConfigError(e.message, path=f"{prefix}.{path}" if prefix else path) from None


def identity(cfg: RunConfig) -> dict[str, Any]:
    """The part of the config that determines results: every default written out, model options
    included; not ``threads``; the user's code files as the hash of what the run uses of each."""
    d = cfg.canonical()
    d.pop("threads", None)
    if cfg.code:  # what the run uses of each file, hashed (see usercode.identity)
        d["code"] = cfg.code_identity()
    try:
        d["model"] = {**model_identity(cfg.model.name, cfg.code), **d["model"]}
    except ConfigError:  # an unknown model is reported by validation, not here
        pass
    return d


def run_id(cfg: RunConfig) -> str:
    """Stable 12-hex-digit hash of :func:`identity`; equal configs give equal ids in any process."""
    blob = json.dumps(identity(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
