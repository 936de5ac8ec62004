"""VGG-16 in its CIFAR form: 13 conv+BN+ReLU layers in 5 pooled stages, one linear classifier."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VGG16", "VGG16_LAYOUT"]

VGG16_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
"""Conv widths and max-pools ("M") of configuration D (Simonyan & Zisserman 2015)."""


class VGG16(nn.Module):
    """VGG-16 for small images: 3x3 conv+BN+ReLU, 2x2 max-pools, global pool, one linear.

    The CIFAR variant replaces the three 4096-wide linears by one linear on the 512 features
    of the last (1x1) map. On inputs smaller than 32x32 the map reaches 1x1 before the fifth
    pool; every pool after that point is left out (16x16 skips one, 8x8 skips two), so all
    13 convs are kept at every size.

    Parameters
    ----------
    in_channels, image_size, num_classes : int
        Input (C, H=W) and number of logits.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for item in VGG16_LAYOUT:
            if item == "M":
                if side > 1:
                    layers.append(nn.MaxPool2d(2))
                    side //= 2
                continue
            layers += [
                nn.Conv2d(channels, int(item), 3, padding=1, bias=False),
                nn.BatchNorm2d(int(item)),
                nn.ReLU(),
            ]
            channels = int(item)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes)."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
