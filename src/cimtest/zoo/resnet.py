"""CIFAR ResNets (He et al. 2016, §4.2): ResNet-20 and ResNet-56 with projection shortcuts."""

from __future__ import annotations

import torch
from torch import nn

from cimtest.exceptions import ConfigError

__all__ = ["BasicBlock", "CifarResNet", "resnet20", "resnet56"]


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers and a shortcut; a 1x1 conv+BN projection when the shape changes.

    Parameters
    ----------
    in_planes, planes : int
        Input and output channels.
    stride : int
        Stride of the first conv (and of the projection).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The 6n+2-layer CIFAR ResNet: a 3x3 conv, 3 stages of n blocks (16/32/64 channels,
    strides 1/2/2), global average pooling and a linear classifier.

    Parameters
    ----------
    depth : int
        6n + 2: 20 (n = 3) or 56 (n = 9).
    in_channels, num_classes : int
        Input channels and number of logits; any image size of at least 4x4 works.
    """

    def __init__(self, depth: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ConfigError(f"A CIFAR ResNet has depth 6n + 2; got {depth}.")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        stages: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(torch.flatten(self.pool(out), 1))


def resnet20(in_channels: int, image_size: int, num_classes: int) -> CifarResNet:
    """ResNet-20 (~0.27 M parameters); `image_size` is accepted for a uniform factory call."""
    del image_size
    return CifarResNet(20, in_channels, num_classes)


def resnet56(in_channels: int, image_size: int, num_classes: int) -> CifarResNet:
    """ResNet-56 (~0.86 M parameters); `image_size` is accepted for a uniform factory call."""
    del image_size
    return CifarResNet(56, in_channels, num_classes)
