"""The three networks of the "lazy, boring, cool" CIFAR-10 exercise, written as a student would.

Each is a plain ``nn.Module``. sweeplab passes ``input_shape`` and ``num_classes`` to those that
name them; every other parameter with a default is an option a study can set
(``model = { name = "nets.py:CoolNet", batchnorm = false }``).
"""

from torch import nn


class LazyNet(nn.Module):
    """The lazy one: a single linear layer from the pixels to the classes."""

    def __init__(self, num_classes):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.LazyLinear(num_classes)  # sized by the first batch

    def forward(self, x):
        return self.fc(self.flatten(x))


class BoringNet(nn.Module):
    """The boring one: an MLP with two hidden layers (110 and 74 units)."""

    def __init__(self, input_shape, num_classes, hidden=(110, 74), activation=True):
        super().__init__()
        width = 1
        for d in input_shape:
            width *= d
        layers = [nn.Flatten()]
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU() if activation else nn.Identity()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class CoolNet(nn.Module):
    """The cool one: LeNet (the PyTorch tutorial CNN) with BatchNorm after every layer but the last."""

    def __init__(self, input_shape, num_classes, batchnorm=True, width=6):
        super().__init__()
        channels = input_shape[0]

        def norm2d(c):
            return nn.BatchNorm2d(c) if batchnorm else nn.Identity()

        def norm1d(c):
            return nn.BatchNorm1d(c) if batchnorm else nn.Identity()

        self.conv1 = nn.Conv2d(channels, width, 5)
        self.bn1 = norm2d(width)
        self.conv2 = nn.Conv2d(width, 16, 5)
        self.bn2 = norm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        side = ((input_shape[1] - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.bn3 = norm1d(120)
        self.fc2 = nn.Linear(120, 84)
        self.bn4 = norm1d(84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        x = self.flatten(x)
        x = self.relu(self.bn3(self.fc1(x)))
        x = self.relu(self.bn4(self.fc2(x)))
        return self.fc3(x)
