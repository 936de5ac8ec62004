"""ResNet-18 (He et al. 2016), untrained, for speed rows only: 3x32x32 and 3x224x224.

Not a zoo entry: every zoo entry trains on a built-in data set, and none has 224x224 images.
`cifar` has the CIFAR stem (a 3x3 conv, no max-pool) and 10 classes; `imagenet` the ImageNet
stem (a 7x7 stride-2 conv and a 3x3 stride-2 max-pool) and 1,000 classes. Both are
zero-argument factories with an ``input_shape``, so the CLI loads them too (from the
repository root: ``cimtest campaign benchmarks.resnet18:imagenet ...``).
"""

from __future__ import annotations

import torch
from torch import nn

from cimtest.zoo.resnet import BasicBlock

__all__ = ["ResNet18", "cifar", "imagenet"]


class ResNet18(nn.Module):
    """A stem, 4 stages of 2 basic blocks (64 to 512 channels), average pool, linear head."""

    def __init__(self, image_size: int, num_classes: int) -> None:
        super().__init__()
        self.input_shape = (3, image_size, image_size)
        if image_size >= 64:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU(),
                                      nn.MaxPool2d(3, stride=2, padding=1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(64), nn.ReLU())
        blocks, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes)]
            in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, 3, H, W) to logits (N, num_classes)."""
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def _seeded(image_size: int, num_classes: int) -> ResNet18:
    """The model initialised from seed 0 (global RNG untouched), in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return ResNet18(image_size, num_classes).eval()


def cifar() -> ResNet18:
    """ResNet-18 for 3x32x32 images and 10 classes (11.2 M parameters)."""
    return _seeded(32, 10)


def imagenet() -> ResNet18:
    """ResNet-18 for 3x224x224 images and 1,000 classes (11.7 M parameters)."""
    return _seeded(224, 1000)
