"""Small classifiers for small inputs: LeNet-5 and a multi-layer perceptron."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "LeNet5"]


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling: 2 convs of 5x5, 3 linears.

    At 32x32 it is the classic layout (6 and 16 channels, no padding: 32→28→14→10→5).
    Smaller inputs pad the convs by 2 so the two pools still leave a 2x2 map.

    Parameters
    ----------
    in_channels, image_size, num_classes : int
        Input (C, H=W) and number of logits.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        pad1 = 0 if image_size >= 32 else 2
        pad2 = 0 if image_size >= 16 else 2
        side = (image_size - 4 + 2 * pad1) // 2
        side = (side - 4 + 2 * pad2) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes)."""
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """A perceptron on the flattened image: C·H·W → 256 → 128 → num_classes, ReLU between.

    Parameters
    ----------
    in_channels, image_size, num_classes : int
        Input (C, H=W) and number of logits.
    hidden : tuple of int
        Widths of the hidden layers.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        hidden: tuple[int, ...] = (256, 128),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes)."""
        return self.layers(x)
