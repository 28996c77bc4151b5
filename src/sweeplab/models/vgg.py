"""VGG for small images (the common CIFAR variant): 3x3 conv stacks, max-pools, one Linear.

Each number in a config is a ``conv 3x3 pad 1 [-> BatchNorm2d] -> ReLU`` with that many output
channels, ``"M"`` is a 2x2 max-pool; after the last stage a global average pool feeds
``Linear(512, classes)``. On 32x32 CIFAR the five pools bring the image to 1x1, so the average
pool is the identity and this is exactly the usual CIFAR VGG (VGG-11 with BN: 9,231,114
parameters for 10 classes). On smaller inputs a pool is skipped once a side is below 2 (8x8
digits: the last two pools), and on larger inputs the average pool keeps the head at 512 inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.models._common import can_pool, check_bool, check_choice

#: Layer configs by depth (number of weight layers), from Simonyan & Zisserman 2015, table 1.
VGG_CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (
        64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
        512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
    ),  # fmt: skip
}


class VGG(nn.Module):
    """VGG-``depth`` for small images.

    Options:
        depth: 11, 13, 16 or 19 (VGG-A, B, D, E). The name counts the original's weight
            layers, three of them fully connected; this variant has depth - 3 convs and one
            Linear, as in the usual CIFAR code (e.g. kuangliu/pytorch-cifar).
        batchnorm: BatchNorm2d after every conv, before the ReLU (conv biases are kept, as in
            torchvision's ``vgg11_bn``).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        depth: int = 11,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        depth = check_choice("depth", depth, VGG_CONFIGS)
        batchnorm = check_bool("batchnorm", batchnorm)

        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for item in VGG_CONFIGS[depth]:
            if item == "M":
                if can_pool(height, width):
                    layers.append(nn.MaxPool2d(2))
                    height, width = height // 2, width // 2
                continue
            layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU())
            channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))
