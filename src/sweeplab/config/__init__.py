"""Run configuration: typed sections, TOML loading, ``--set`` overrides, run identity."""

from .load import (
    build_run_config,
    deep_merge,
    flatten,
    format_validation_error,
    load_run_config,
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
    "build_run_config",
    "deep_merge",
    "flatten",
    "format_validation_error",
    "load_run_config",
    "parse_set",
    "parse_value",
    "read_toml",
    "set_path",
]
