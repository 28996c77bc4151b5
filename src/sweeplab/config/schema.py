"""Typed, frozen run configuration: one section per concern, validated at construction.

A run is fully described by a :class:`RunConfig`. Its identity (``sweeplab.resolve.run_id``) is
the hash of its canonical JSON form, so two spellings of the same config (key order, defaults
written out or left implicit) are the same run. Fields that do not change results (``threads``)
are left out of the identity.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sweeplab.vocabulary import METRICS


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]


#: Limits no real study reaches, so that a typo (``epochs = 1e9``) is refused rather than tried.
MAX_EPOCHS = 10_000
#: Evaluations inside one run (``eval_every_steps``): a step row each, so a run of 10,000 epochs that
#: evaluates every step would otherwise write millions of full evaluations. Known only with the
#: data's size, so it is checked when the run starts.
MAX_STEP_EVALS = 100_000
#: numpy, torch and scikit-learn all take seeds in 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1
SeedInt = Annotated[int, Field(ge=0, le=MAX_SEED)]
#: Ranges like ``betas = [0.9, 0.999]`` arrive as TOML arrays, so tuples accept lists (their items
#: stay strict).
PAIR = {"strict": False}

_STRICT = {"frozen": True, "strict": True, "allow_inf_nan": False, "validate_default": True}


class Section(BaseModel):
    """Base for config sections: unknown keys are errors and values are immutable.

    Strict: ``epochs = "2"`` or ``max_batch_size = 1e3`` is an error, not silently coerced, and
    inf/nan are refused everywhere (no field means anything by them), so every accepted config
    survives the JSON hand-over to a worker unchanged.
    """

    model_config = ConfigDict(extra="forbid", **_STRICT)


class AugmentConfig(Section):
    """Train-only augmentation, applied per sample on whole batches on the device."""

    crop_padding: NonNegInt = Field(0, description="Random crop after padding each side by this many pixels (0 = off).")
    crop_mode: Literal["zero", "reflect"] = Field("zero", description="How the crop padding is filled.")
    hflip: bool = Field(False, description="Random horizontal flip with probability 0.5.")
    vflip: bool = Field(False, description="Random vertical flip with probability 0.5.")
    random_resized_crop: bool = Field(False, description="torchvision-style RandomResizedCrop back to the input size.")
    rrc_scale: tuple[float, float] = Field((0.08, 1.0), **PAIR, description="Area fraction range of RandomResizedCrop.")
    rrc_ratio: tuple[float, float] = Field((3 / 4, 4 / 3), **PAIR, description="Aspect ratio range of RandomResizedCrop.")
    cutout: NonNegInt = Field(0, description="Side of a square zeroed at a random place (0 = off).")

    @field_validator("rrc_scale", "rrc_ratio")
    @classmethod
    def _ordered_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 < v[0] <= v[1]):
            raise ValueError("must be [low, high] with 0 < low <= high")
        return v

    def any(self) -> bool:
        """True when at least one augmentation is switched on."""
        return bool(self.crop_padding or self.hflip or self.vflip or self.random_resized_crop or self.cutout)


class DataConfig(Section):
    """Which dataset, which part of it, and how it is presented to the model."""

    dataset: str = Field("digits", description="Dataset name (see `sweeplab datasets`).")
    path: str | None = Field(None, description="imagefolder/npz: directory or archive to read.")
    # scikit-learn generators (moons, circles, blobs); digits uses test_fraction and random_state.
    n_samples: PositiveInt = Field(1000, description="Generated datasets: number of samples.")
    noise: NonNegFloat = Field(0.1, description="moons/circles: standard deviation of Gaussian noise.")
    factor: float = Field(0.5, gt=0, lt=1, description="circles: inner/outer radius ratio.")
    centers: PositiveInt = Field(3, description="blobs: number of centres (= classes).")
    n_features: PositiveInt = Field(2, description="blobs: input dimension.")
    random_state: SeedInt = Field(0, description="Seed of generated data and of the train/test split.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Datasets without a fixed test set: test share.")
    # sequence tasks
    seq_length: Annotated[int, Field(ge=2)] = Field(10, description="palindrome: sequence length.")
    train_size: PositiveInt = Field(10000, description="palindrome: training sequences.")
    test_size: PositiveInt = Field(2000, description="palindrome: test sequences.")
    # subsets and validation split
    train_subset: PositiveInt | None = Field(None, description="Use only the first N training examples.")
    test_subset: PositiveInt | None = Field(None, description="Use only the first N test examples.")
    val_size: PositiveInt | None = Field(None, description="Examples carved from the training set for validation.")
    val_fraction: float | None = Field(None, gt=0, lt=1, description="Alternative to val_size, as a fraction.")
    split_seed: SeedInt = Field(0, description="Seed of the validation split (fixed across run seeds).")
    # presentation
    normalize: bool = Field(True, description="Normalise inputs with mean/std (dataset's unless given).")
    mean: list[float] | None = Field(None, description="Per-channel mean overriding the dataset's.")
    std: list[float] | None = Field(None, description="Per-channel std overriding the dataset's.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @model_validator(mode="after")
    def _one_val_spec(self) -> "DataConfig":
        if self.val_size is not None and self.val_fraction is not None:
            raise ValueError("give val_size or val_fraction, not both")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be > 0, got {self.std}")
        return self


class ModelConfig(BaseModel):
    """Model name, initialisation, and the model's own options (checked against the registry)."""

    model_config = ConfigDict(extra="allow", **_STRICT)

    name: str = Field("mlp", description="Model name (see `sweeplab models`).")
    init: Literal["default", "normal", "xavier_normal", "kaiming_normal"] = Field(
        "default", description="Weight initialisation scheme."
    )
    init_std: PositiveFloat = Field(0.01, description="Standard deviation for init='normal'.")

    @model_validator(mode="after")
    def _finite_options(self) -> "ModelConfig":
        for key, value in (self.model_extra or {}).items():
            if not _finite(value):
                raise ValueError(f"option {key} must be finite (got {value!r})")
        return self

    def options(self) -> dict[str, Any]:
        """The model-specific options (everything but name/init/init_std)."""
        return dict(self.model_extra or {})


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


class OptimConfig(Section):
    """Optimizer and its hyper-parameters."""

    name: Literal["sgd", "adam", "adamw", "rmsprop", "radam"] = "sgd"
    lr: PositiveFloat = Field(0.01, description="Base learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd/rmsprop momentum.")
    nesterov: bool = Field(False, description="sgd: Nesterov momentum (needs momentum > 0).")
    weight_decay: NonNegFloat = Field(0.0, description="L2 penalty (decoupled for adamw).")
    betas: tuple[float, float] = Field((0.9, 0.999), **PAIR, description="adam/adamw/radam betas.")
    eps: PositiveFloat = Field(1e-8, description="Numerical stability term.")
    alpha: float = Field(0.99, gt=0, lt=1, description="rmsprop smoothing constant.")

    @model_validator(mode="after")
    def _check(self) -> "OptimConfig":
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs name='sgd' and momentum > 0")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(self.betas)}")
        return self


class ScheduleConfig(Section):
    """Learning-rate schedule, a pure function of the training step."""

    name: Literal["constant", "step", "multistep", "exponential", "cosine", "onecycle"] = "constant"
    interval: Literal["epoch", "step"] = Field(
        "epoch", description="Unit of step_size/milestones (epochs or optimizer steps)."
    )
    step_size: PositiveInt = Field(30, description="step: decay every step_size intervals.")
    gamma: float = Field(0.1, gt=0, description="step/multistep/exponential decay factor.")
    milestones: list[PositiveInt] = Field(default_factory=list, description="multistep: decay points.")
    warmup_epochs: NonNegFloat = Field(0.0, description="cosine: linear warm-up length in epochs.")
    min_lr: NonNegFloat = Field(0.0, description="cosine: final learning rate.")
    max_lr: PositiveFloat | None = Field(None, description="onecycle: peak lr (default optim.lr).")
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: share of steps spent rising.")

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("milestones must be strictly increasing")
        return v

    @model_validator(mode="after")
    def _check(self) -> "ScheduleConfig":
        if self.name == "multistep" and not self.milestones:
            raise ValueError("multistep needs milestones, e.g. milestones = [80, 120]")
        return self


class LossConfig(Section):
    """Training loss."""

    name: Literal["cross_entropy", "mse"] = Field("cross_entropy", description="mse is against one-hot targets.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross_entropy label smoothing.")


class EarlyStopConfig(Section):
    """Stop a run when its metric has not improved for ``patience`` epochs (Keras/Lightning
    semantics: an improvement is a change beyond ``min_delta`` in the better direction)."""

    metric: str | None = Field(None, description="Metric to watch (default: the run's best_metric).")
    patience: PositiveInt = Field(5, description="Epochs without improvement before the run stops.")
    min_delta: NonNegFloat = Field(0.0, description="Smallest change that counts as an improvement.")

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str | None) -> str | None:
        if v is not None and v not in METRICS:
            raise ValueError(f"must be one of {', '.join(METRICS)}")
        return v


class CodeFile(Section):
    """One file of the user's own code, carried by content (see :mod:`sweeplab.usercode`).

    Runs name their own models and data functions as ``"nets.py:CoolNet"``; the config carries
    the file's text so any worker, on any machine, trains exactly that code, and its hash is part
    of the run's identity: editing the file makes new runs, an unchanged file resumes.
    """

    sha256: str = Field(description="SHA-256 of the source text (UTF-8).")
    source: str = Field(description="The file's text as it was when the run was defined.")

    @model_validator(mode="after")
    def _hash_matches(self) -> "CodeFile":
        if hashlib.sha256(self.source.encode()).hexdigest() != self.sha256:
            raise ValueError("sha256 does not match the source text")
        return self


class RunConfig(Section):
    """Everything that defines one training run."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = Field(10, description="Training epochs.")
    batch_size: PositiveInt | Literal["max"] = Field(
        64, description="Training batch size, or 'max' for the largest that fits the device."
    )
    max_batch_size: PositiveInt = Field(1024, description="Cap for batch_size = 'max'.")
    memory_budget_mb: PositiveInt = Field(
        4096, description="CPU: memory a batch_size='max' search may use (MiB)."
    )
    eval_batch_size: PositiveInt = Field(1000, description="Batch size for evaluation.")
    eval_every_steps: PositiveInt | None = Field(
        None, description="Also evaluate on val/test every N optimizer steps (counted over the whole run), "
        "stored as step rows beside the epoch rows; for long epochs."
    )
    seed: SeedInt = Field(0, description="Seed of initialisation, shuffling, augmentation and dropout.")
    device: str = Field("auto", description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
    threads: PositiveInt | None = Field(None, description="CPU threads for this run (default: torch's).")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 = autocast on CUDA.")
    channels_last: bool = Field(
        True,
        description="channels_last memory format for convolutional models on image data (faster on CPU and "
        "CUDA); CPU steps under 6 MFLOP train with PyTorch's native NCHW kernels instead, faster there.",
    )
    grad_clip: PositiveFloat | None = Field(None, description="Clip the gradient norm to this value.")
    best_metric: str = Field("test_acc", description="Metric whose best epoch's weights are kept.")
    early_stop: EarlyStopConfig | None = Field(None, description="Stop when the metric stops improving.")
    code: dict[str, CodeFile] = Field(
        default_factory=dict, description="The user's code files the run names (path as written -> content)."
    )

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, v: Any) -> Any:
        if v == "max" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError("must be an integer >= 1 or \"max\"")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        ok = v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return v

    @field_validator("best_metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"must be one of {', '.join(METRICS)}")
        return v

    @model_validator(mode="after")
    def _stop_needs_its_split(self) -> "RunConfig":
        metric = self.stop_metric()
        if metric and metric.startswith("val_") and self.data.val_size is None and self.data.val_fraction is None:
            raise ValueError(f"early_stop watches {metric}, which needs a validation split: set data.val_size "
                             "or data.val_fraction")
        return self

    # -- identity -------------------------------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """The config as plain JSON-able data, every default written out (``code``, ``early_stop``
        and ``eval_every_steps`` only when used, so configs without them keep the form, and the
        ids, they always had)."""
        d = self.model_dump(mode="json")
        for optional in ("code", "early_stop", "eval_every_steps"):  # absent unless used: older configs keep their ids
            if not d[optional]:
                del d[optional]
        return d

    def stop_metric(self) -> str | None:
        """The metric early stopping watches, or None without early stopping."""
        return None if self.early_stop is None else (self.early_stop.metric or self.best_metric)

    def code_identity(self) -> dict[str, str]:
        """Per code file, the hash of the part of it this run depends on: the model or data
        function it names and what those use, so an edit elsewhere in the file keeps the run."""
        from sweeplab.usercode import parse_ref
        from sweeplab.usercode.identity import code_identity

        used: dict[str, set[str]] = {}
        for name in (self.model.name, self.data.dataset):
            if (ref := parse_ref(name)) is not None:
                used.setdefault(ref[0], set()).add(ref[1])
        return {path: code_identity(f.source, frozenset(used.get(path, ()))) for path, f in self.code.items()}

    def to_json(self) -> str:
        """The one serialisation of a config that crosses a process (or machine) boundary."""
        return json.dumps(self.canonical(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        """Inverse of :meth:`to_json`: ``RunConfig.from_json(cfg.to_json()) == cfg`` for every
        config the schema accepts (tests/test_hardening_config.py checks it over the schema)."""
        return cls.model_validate(json.loads(text))
