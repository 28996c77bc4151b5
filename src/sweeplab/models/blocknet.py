"""BlockNet: stacked blocks of parallel conv branches mixed by input-dependent weights.

Each block runs k parallel ``conv 3x3 (pad 1)`` branches on its input and combines their outputs
with per-example weights computed from that same input (global average pool -> Linear -> softmax
over the k branches), then BatchNorm + ReLU. Softmax rather than unnormalised weights keeps the
mixture a convex combination, so the output scale does not depend on k and the gate cannot blow
up the activations. Blocks are separated by 2x2 max-pools (option ``downsample``; skipped once a
side is below 2, so 8x8 digits work), and a global average pool feeds an MLP head
``256-128-64`` (ReLU, dropout) to the classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sweeplab.errors import ConfigError
from sweeplab.models._common import (
    can_pool,
    check_bool,
    check_fraction,
    check_int,
    check_int_list,
)

#: Hidden widths of the classifier head.
HEAD_WIDTHS = (256, 128, 64)


class MixtureBlock(nn.Module):
    """k parallel 3x3 conv branches, mixed per example by softmax weights from the input."""

    def __init__(self, in_channels: int, out_channels: int, branches: int) -> None:
        super().__init__()
        # Separate convs rather than one conv with k*out channels: the maths would be the same,
        # but fan-out based inits (xavier, kaiming fan_out) must see each branch's own fan-out.
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 3, padding=1) for _ in range(branches)
        )
        self.gate_pool = nn.AdaptiveAvgPool2d(1)
        self.gate_flatten = nn.Flatten()
        self.gate = nn.Linear(in_channels, branches)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.gate(self.gate_flatten(self.gate_pool(x))), dim=1)
        outputs = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, k, C, H, W)
        mixed = torch.einsum("bk,bkchw->bchw", weights, outputs)
        return self.relu(self.bn(mixed))


class BlockNet(nn.Module):
    """``num_blocks`` mixture blocks, then global average pool and an MLP head.

    Options:
        num_blocks: number of blocks.
        branches: parallel conv branches per block (k).
        channels: output channels of each block; one entry per block.
        downsample: 2x2 max-pool after every block but the last.
        dropout: dropout probability after each hidden layer of the head (no layer when 0).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        num_blocks: int = 4,
        branches: int = 6,
        channels: Sequence[int] = (64, 128, 256, 512),
        downsample: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        num_blocks = check_int("num_blocks", num_blocks, min_value=1)
        branches = check_int("branches", branches, min_value=1)
        channels = check_int_list("channels", channels)
        if len(channels) != num_blocks:
            raise ConfigError(
                f"got {list(channels)!r} ({len(channels)} entries); allowed: one channel count "
                f"per block (num_blocks = {num_blocks})",
                path="model.channels",
            )
        downsample = check_bool("downsample", downsample)
        dropout = check_fraction("dropout", dropout)

        in_channels, height, width = input_shape
        layers: list[nn.Module] = []
        for index, out_channels in enumerate(channels):
            layers.append(MixtureBlock(in_channels, out_channels, branches))
            is_last = index == num_blocks - 1
            if downsample and not is_last and can_pool(height, width):
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_channels = out_channels
        self.blocks = nn.Sequential(*layers)

        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        for hidden in HEAD_WIDTHS:
            head += [nn.Linear(in_channels, hidden), nn.ReLU()]
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            in_channels = hidden
        head.append(nn.Linear(in_channels, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))
