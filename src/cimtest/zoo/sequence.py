"""The MNIST-1D paper's models (Greydanus & Kobak, ICML 2024): a Conv1d CNN and an MLP.

Layouts as in the paper's reference code: the CNN has three Conv1d layers of 25 channels
(kernel 5 stride 2 padding 1, then kernel 3 stride 2 padding 1 twice) with ReLU, and a
linear read-out; the MLP has two hidden layers of 100 with ReLU. Neither has BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP1D", "ConvNet1D"]


def _conv_length(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class ConvNet1D(nn.Module):
    """Sequences (N, C, L) → logits: 3 Conv1d of 25 channels + ReLU, then a Linear.

    Parameters
    ----------
    in_channels, length, num_classes : int
        Input (C, L) and number of logits.
    channels : int
        Channels of each convolution (paper: 25).
    """

    def __init__(self, in_channels: int, length: int, num_classes: int, channels: int = 25):
        super().__init__()
        layout = ((in_channels, 5), (channels, 3), (channels, 3))
        layers: list[nn.Module] = []
        for c_in, kernel in layout:
            layers += [nn.Conv1d(c_in, channels, kernel, stride=2, padding=1), nn.ReLU()]
            length = _conv_length(length, kernel, 2, 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map sequences (N, C, L) to logits (N, num_classes)."""
        return self.classifier(self.features(x).flatten(1))


class MLP1D(nn.Module):
    """Features (N, F) → logits: F → 100 → 100 → num_classes, ReLU between.

    Parameters
    ----------
    in_channels, length, num_classes : int
        Input (F = in_channels · length features, taken flat) and number of logits.
    hidden : int
        Width of both hidden layers (paper: 100).
    """

    def __init__(self, in_channels: int, length: int, num_classes: int, hidden: int = 100):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * length, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map features (N, F) to logits (N, num_classes)."""
        return self.layers(x)
