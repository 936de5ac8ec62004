"""MobileNet-v1 (depthwise-separable convs) and MobileNet-v2 (inverted residuals), CIFAR forms."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InvertedResidual", "MobileNetV1", "MobileNetV2"]


def _conv_bn(
    cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU6())
    return layers


def _scaled(channels: int, width: float) -> int:
    """Channels times the width multiplier, rounded to a multiple of 8 (at least 8)."""
    return max(8, int(channels * width + 4) // 8 * 8)


def _init(model: nn.Module) -> None:
    """Kaiming-normal convs (fan out), N(0, 0.01) linear weights, zero linear biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


class MobileNetV1(nn.Module):
    """MobileNet (Howard et al. 2017) for 32x32 inputs: a 3x3 conv at stride 1, 13
    depthwise-separable blocks (strides 2 at 128, 256, 512 and 1024 channels), global
    average pool, linear.

    Parameters
    ----------
    in_channels, image_size, num_classes : int
        Input (C, H=W) and number of logits; `image_size` only documents the input.
    width : float
        Width multiplier (alpha) applied to every layer.
    """

    LAYOUT: tuple[tuple[int, int], ...] = (
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
    )
    """(output channels, stride) of each depthwise-separable block."""

    def __init__(
        self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0
    ) -> None:
        super().__init__()
        del image_size
        cin = _scaled(32, width)
        layers = _conv_bn(in_channels, cin, 3)
        for cout, stride in self.LAYOUT:
            cout = _scaled(cout, width)
            layers += _conv_bn(cin, cin, 3, stride, groups=cin)
            layers += _conv_bn(cin, cout, 1)
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes)."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class InvertedResidual(nn.Module):
    """MobileNet-v2 block: 1x1 expansion, 3x3 depthwise, linear 1x1 projection; a residual
    connection when stride is 1 and the channels are unchanged.

    Parameters
    ----------
    cin, cout, stride, expansion : int
        Input and output channels, depthwise stride and expansion factor t.
    """

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers = [] if expansion == 1 else _conv_bn(cin, hidden, 1)
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, cout, 1, relu=False)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return block(x), plus x when the block is residual."""
        out = self.block(x)
        return out + x if self.residual else out


class MobileNetV2(nn.Module):
    """MobileNet-v2 (Sandler et al. 2018), CIFAR form: the stem conv and the second stage
    run at stride 1, so 32x32 inputs reach the last block at 4x4.

    Parameters
    ----------
    in_channels, image_size, num_classes : int
        Input (C, H=W) and number of logits; `image_size` only documents the input.
    width : float
        Width multiplier applied to every layer but the last 1x1 conv (kept at 1280, as in
        the paper, for width <= 1).
    """

    LAYOUT: tuple[tuple[int, int, int, int], ...] = (
        (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    )
    """(expansion t, channels c, blocks n, first stride s) of each stage."""

    def __init__(
        self, in_channels: int, image_size: int, num_classes: int, width: float = 1.0
    ) -> None:
        super().__init__()
        del image_size
        cin = _scaled(32, width)
        layers: list[nn.Module] = list(_conv_bn(in_channels, cin, 3))
        for t, c, n, s in self.LAYOUT:
            cout = _scaled(c, width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        last = _scaled(1280, max(1.0, width))
        layers += _conv_bn(cin, last, 1)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes)."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

