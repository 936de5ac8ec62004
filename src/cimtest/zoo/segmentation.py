"""Small segmentation networks: a UNet and an FCN, both returning per-pixel class logits."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FCN", "UNet"]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class UNet(nn.Module):
    """UNet (Ronneberger et al. 2015) with two down levels: 16-32-64 channels, max-pool down,
    2x2 ConvTranspose2d up, skip connections concatenated, 1x1 conv head.

    Parameters
    ----------
    in_channels, image_size, num_classes : int
        Input (C, H=W), H divisible by 4, and classes per pixel; output (N, num_classes, H, W).
    widths : tuple of int
        Channels at full, half and quarter resolution.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        del image_size
        w1, w2, w3 = widths
        self.enc1 = _double_conv(in_channels, w1)
        self.enc2 = _double_conv(w1, w2)
        self.bottom = _double_conv(w2, w3)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(w3, w2, 2, stride=2)
        self.dec2 = _double_conv(2 * w2, w2)
        self.up1 = nn.ConvTranspose2d(w2, w1, 2, stride=2)
        self.dec1 = _double_conv(2 * w1, w1)
        self.head = nn.Conv2d(w1, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes, H, W)."""
        s1 = self.enc1(x)
        s2 = self.enc2(self.pool(s1))
        out = self.bottom(self.pool(s2))
        out = self.dec2(torch.cat([self.up2(out), s2], dim=1))
        out = self.dec1(torch.cat([self.up1(out), s1], dim=1))
        return self.head(out)


class FCN(nn.Module):
    """Fully convolutional network (Long et al. 2015), FCN-8s style at small scale.

    Encoder: three stages of a stride-2 3x3 conv and a 3x3 conv (conv+BN+ReLU; 32-64-128
    channels) down to 1/8 resolution. Decoder: 1x1 score convs on each stage; the coarsest
    scores are upsampled 2x by ConvTranspose2d (bilinear-initialised, learnt), added to the
    next finer scores, and so on up to full resolution.

    Parameters
    ----------
    in_channels, image_size, num_classes : int
        Input (C, H=W), H divisible by 8, and classes per pixel; output (N, num_classes, H, W).
    widths : tuple of int
        Channels of the three encoder stages.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        widths: tuple[int, int, int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        del image_size
        stages, scores, ups = [], [], []
        cin = in_channels
        for width in widths:
            stages.append(
                nn.Sequential(
                    nn.Conv2d(cin, width, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                    nn.Conv2d(width, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                )
            )
            scores.append(nn.Conv2d(width, num_classes, 1))
            ups.append(_bilinear_up(num_classes))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.scores = nn.ModuleList(scores)
        self.ups = nn.ModuleList(ups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, num_classes, H, W)."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        out = self.scores[-1](features[-1])
        for i in range(len(features) - 1, 0, -1):
            out = self.ups[i](out) + self.scores[i - 1](features[i - 1])
        return self.ups[0](out)


def _bilinear_up(channels: int) -> nn.ConvTranspose2d:
    """A 2x ConvTranspose2d initialised to per-channel bilinear upsampling, as in FCN."""
    up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False)
    tap = torch.tensor([0.25, 0.75, 0.75, 0.25])
    with torch.no_grad():
        up.weight.zero_()
        up.weight[torch.arange(channels), torch.arange(channels)] = torch.outer(tap, tap)
    return up
