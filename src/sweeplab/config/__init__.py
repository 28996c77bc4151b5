"""Run configuration: typed sections, TOML loading, ``--set`` overrides (the schema only; see
``sweeplab.resolve`` for the registries' checks and run identity)."""

from .load import (
    deep_merge,
    flatten,
    format_validation_error,
    validate_run_config,
    parse_set,
    parse_value,
    read_toml,
    set_path,
)
from .schema import (
    AugmentConfig,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
)

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "ScheduleConfig",
    "deep_merge",
    "flatten",
    "format_validation_error",
    "validate_run_config",
    "parse_set",
    "parse_value",
    "read_toml",
    "set_path",
]
