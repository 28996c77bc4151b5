"""Training losses built from :class:`LossConfig`."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from sweeplab.config import LossConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build_loss(cfg: LossConfig, num_classes: int) -> LossFn:
    """``loss(logits, labels) -> scalar`` averaged over the batch."""
    if cfg.name == "cross_entropy":
        smoothing = cfg.label_smoothing

        def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, y, label_smoothing=smoothing)

        return cross_entropy
    if cfg.name == "mse":
        # MSE against one-hot targets, as in the classic "MSE instead of cross-entropy" ablation;
        # averaged over batch and classes like nn.MSELoss's default.
        def mse(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(logits, F.one_hot(y, num_classes).to(logits.dtype))

        return mse
    raise AssertionError(f"unhandled loss {cfg.name}")
