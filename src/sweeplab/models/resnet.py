"""CIFAR ResNets of He et al. 2016 ("Deep Residual Learning", section 4.2): resnet20 ... resnet110.

A 3x3 conv stem with 16 filters, then three stages of n basic blocks with 16, 32 and 64 filters
(depth = 6n + 2), global average pooling and one Linear. Stages 2 and 3 start with stride 2; their
shortcuts are the paper's option A (subsample + zero-pad the new channels, no parameters), which
is what gives the published parameter counts (ResNet-20: 0.27M = 269,722 for 10 classes).

The paper's nets are Kaiming-initialised; here initialisation follows the run's ``init`` option
like every other model (``init = "kaiming_normal"`` reproduces the paper's setup).
All convolutions are padded, so any input size works (8x8 digits give 8 -> 4 -> 2 per stage).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Filters per stage, from the paper.
STAGE_WIDTHS = (16, 32, 64)


class ShortcutA(nn.Module):
    """Option-A shortcut: take every ``stride``-th pixel and zero-pad the extra channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # Split the padding over both ends of the channel axis, as the reference implementations do.
        before = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, before, self.extra_channels - before))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a ReLU between, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        # No conv biases: each conv is followed by BatchNorm, whose shift makes them redundant.
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = ShortcutA(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-``depth`` for small images; ``depth`` must be 6n + 2."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, depth: int) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
        blocks_per_stage = (depth - 2) // 6

        self.conv1 = nn.Conv2d(input_shape[0], STAGE_WIDTHS[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        stages: list[nn.Module] = []
        in_channels = STAGE_WIDTHS[0]
        for index, width in enumerate(STAGE_WIDTHS):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(in_channels, width, stride))
                in_channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return self.fc(self.flatten(self.pool(self.stages(out))))


# One factory per published depth, so each is a registered model with no options of its own.
def resnet20(input_shape: tuple[int, ...], num_classes: int) -> CifarResNet:
    return CifarResNet(input_shape, num_classes, depth=20)


def resnet32(input_shape: tuple[int, ...], num_classes: int) -> CifarResNet:
    return CifarResNet(input_shape, num_classes, depth=32)


def resnet44(input_shape: tuple[int, ...], num_classes: int) -> CifarResNet:
    return CifarResNet(input_shape, num_classes, depth=44)


def resnet56(input_shape: tuple[int, ...], num_classes: int) -> CifarResNet:
    return CifarResNet(input_shape, num_classes, depth=56)


def resnet110(input_shape: tuple[int, ...], num_classes: int) -> CifarResNet:
    return CifarResNet(input_shape, num_classes, depth=110)
