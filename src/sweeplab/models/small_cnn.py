"""LeNet-style CNNs: two conv + max-pool stages, then a fully connected head.

- ``tutorial_cnn``: the PyTorch "Training a classifier" CIFAR-10 tutorial net
  (conv 3->6 5x5, pool, conv 6->16 5x5, pool, fc 400-120-84-10; 62,006 parameters).
- ``simple_cnn``: conv 3->8 5x5, pool, conv 8->16 3x3, pool, fc 576-120-84-10 (82,030 parameters).

Small inputs: on 32x32 CIFAR (and 28x28 MNIST) the convolutions are unpadded, exactly as in the
canonical nets; the first Linear's input size is computed from the input shape (MNIST: 16*4*4).
When the unpadded convolutions would shrink the image to nothing (8x8 digits: 8 -> 4 -> 2 < 5),
*every* convolution instead gets "same" padding (kernel // 2), so 8x8 digits give
8 -> pool 4 -> pool 2 and a 16*2*2 flatten. Pooling is skipped once a side is below 2.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from sweeplab.models._common import _fail as fail
from sweeplab.models._common import can_pool, check_activation, conv_out


class SmallCNN(nn.Module):
    """Conv [-> BatchNorm2d] -> activation -> max-pool 2 per conv layer, then a Linear head.

    Subclasses fix the layer sizes. Options:
        activation: one of ``none, relu, swish, leaky_relu, tanh, gelu``, used after every conv
            and every hidden Linear.
        batchnorm: ``true``: BatchNorm after every conv and every hidden Linear, before the
            activation; ``"conv"``: after the convolutions only (as in the ECE 661 SimpleNN);
            ``false``: none.
    """

    #: (out_channels, kernel_size) of each conv layer; each is followed by a 2x2 max-pool.
    conv_layers: ClassVar[tuple[tuple[int, int], ...]]
    #: Widths of the hidden Linear layers of the head.
    fc_hidden: ClassVar[tuple[int, ...]]

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        activation: str = "relu",
        batchnorm: bool | str = False,
    ) -> None:
        super().__init__()
        make_activation = check_activation(activation)
        # "conv" rather than a second option: a new option's default would change every existing
        # run's identity (defaults are part of it), a new value of this one changes none.
        if not isinstance(batchnorm, bool) and batchnorm != "conv":
            fail("batchnorm", batchnorm, 'true, false or "conv" (after the convolutions only)')
        head_norm = batchnorm is True

        channels, height, width = input_shape
        same_padding = self._needs_padding(height, width)
        features: list[nn.Module] = []
        for out_channels, kernel in self.conv_layers:
            padding = kernel // 2 if same_padding else 0
            features.append(nn.Conv2d(channels, out_channels, kernel, padding=padding))
            if batchnorm:
                features.append(nn.BatchNorm2d(out_channels))
            features.append(make_activation())
            height = conv_out(height, kernel, padding=padding)
            width = conv_out(width, kernel, padding=padding)
            if can_pool(height, width):
                features.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            channels = out_channels
        self.features = nn.Sequential(*features)

        head: list[nn.Module] = [nn.Flatten()]
        in_features = channels * height * width
        for out_features in self.fc_hidden:
            head.append(nn.Linear(in_features, out_features))
            if head_norm:
                head.append(nn.BatchNorm1d(out_features))
            head.append(make_activation())
            in_features = out_features
        head.append(nn.Linear(in_features, num_classes))
        self.classifier = nn.Sequential(*head)

    def _needs_padding(self, height: int, width: int) -> bool:
        """True when the canonical unpadded convolutions do not fit the input (e.g. 8x8)."""
        for _, kernel in self.conv_layers:
            if min(height, width) < kernel:
                return True
            height, width = conv_out(height, kernel), conv_out(width, kernel)
            if can_pool(height, width):
                height, width = height // 2, width // 2
        return False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class TutorialCNN(SmallCNN):
    """The PyTorch CIFAR-10 tutorial net (62,006 parameters on CIFAR-10)."""

    conv_layers = ((6, 5), (16, 5))
    fc_hidden = (120, 84)


class SimpleCNN(SmallCNN):
    """A slightly wider first conv and a 3x3 second conv (82,030 parameters on CIFAR-10)."""

    conv_layers = ((8, 5), (16, 3))
    fc_hidden = (120, 84)
