"""Fully connected classifiers: ``linear`` (multinomial logistic regression) and ``mlp``.

Both flatten whatever they get, so they run on images ``(C, H, W)`` and feature vectors ``(D,)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sweeplab.models._common import check_activation, check_bool, check_fraction, check_int_list


class LinearClassifier(nn.Module):
    """Flatten, then one Linear layer from the input to the class logits."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(x))


class MLP(nn.Module):
    """Flatten, then ``Linear [-> BatchNorm1d] -> activation [-> Dropout]`` per hidden width.

    Options:
        hidden: widths of the hidden layers; ``[]`` gives logistic regression.
        activation: one of ``none, relu, swish, leaky_relu, tanh, gelu``; ``none`` makes a deep
            linear network (same function class as ``linear``, different optimisation dynamics).
        batchnorm: BatchNorm1d after each hidden Linear, before the activation. Linear biases are
            kept so that toggling it only adds the BN layers.
        dropout: dropout probability after each hidden activation (no layer when 0).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        hidden: Sequence[int] = (110, 74),
        activation: str = "relu",
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = check_int_list("hidden", hidden)
        make_activation = check_activation(activation)
        batchnorm = check_bool("batchnorm", batchnorm)
        dropout = check_fraction("dropout", dropout)

        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for out in hidden:
            layers.append(nn.Linear(width, out))
            if batchnorm:
                layers.append(nn.BatchNorm1d(out))
            layers.append(make_activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = out
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
