"""DCGAN (Radford et al. 2016): a generator from a latent vector to an image, and a
discriminator from an image to one real/fake logit, both shaped to the image size."""

from __future__ import annotations

import math

import torch
from torch import nn

from cimtest.exceptions import ConfigError
from cimtest.zoo.registry import LATENT_DIM

__all__ = ["LATENT_DIM", "DCGANDiscriminator", "DCGANGenerator", "ToInputRange"]


class ToInputRange(nn.Module):
    """The fixed affine ``x = low + (t + 1) / 2 * (high - low)`` from tanh output to data range.

    `low` and `high` are buffers (saved with the weights, never trained): the range of a
    normalised pixel of the data the GAN learnt, so generated images are valid model input.
    """

    def __init__(self, low: float = -1.0, high: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor(float(low)))
        self.register_buffer("high", torch.tensor(float(high)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Map values in [-1, 1] to [low, high]."""
        return self.low + (t + 1.0) * 0.5 * (self.high - self.low)

    @torch.no_grad()
    def set_range(self, low: float, high: float) -> None:
        """Set the target range in place."""
        self.low.fill_(low)
        self.high.fill_(high)


def _levels(image_size: int) -> tuple[int, int]:
    """Return (side of the smallest map, number of 2x steps to reach `image_size`)."""
    base = 4 if image_size >= 16 else 2
    steps = int(math.log2(image_size // base))
    if base << steps != image_size:
        raise ConfigError(f"DCGAN needs a power-of-two image size >= 8; got {image_size}.")
    return base, steps


class DCGANGenerator(nn.Module):
    """Latent (N, 100) → image (N, C, H, W) in the data's normalised range.

    A ConvTranspose2d projects the latent to a ``base x base`` map (4x4, or 2x2 for 8x8
    images) of ``width * 2**(steps-1)`` channels; each further ConvTranspose2d (4x4,
    stride 2) doubles the side and halves the channels, with BN+ReLU between; the last one
    outputs C channels, then tanh and `ToInputRange`.

    Parameters
    ----------
    out_channels, image_size : int
        Image channels and side (a power of two, at least 8).
    latent_dim : int
        Length of the latent vector.
    width : int
        Channels of the last hidden map (ngf).
    """

    def __init__(
        self,
        out_channels: int,
        image_size: int,
        latent_dim: int = LATENT_DIM,
        width: int = 64,
    ) -> None:
        super().__init__()
        base, steps = _levels(image_size)
        channels = width * 2 ** (steps - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, channels, base, 1, 0, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.to_range = ToInputRange()
        _dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (N, latent_dim) to images (N, C, H, W)."""
        return self.to_range(self.net(z.reshape(z.shape[0], -1, 1, 1)))


class DCGANDiscriminator(nn.Module):
    """Image (N, C, H, W) → one real/fake logit (N, 1).

    4x4 stride-2 convs halve the side down to ``base`` (4, or 2 for 8x8 images), doubling
    the channels from `width`, with LeakyReLU(0.2) and BN on all but the first; a final
    ``base x base`` conv gives the logit.

    Parameters
    ----------
    in_channels, image_size : int
        Image channels and side (a power of two, at least 8).
    width : int
        Channels of the first conv (ndf).
    """

    def __init__(self, in_channels: int, image_size: int, width: int = 64) -> None:
        super().__init__()
        base, steps = _levels(image_size)
        layers: list[nn.Module] = []
        cin, cout = in_channels, width
        for i in range(steps):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            cin, cout = cout, cout * 2
        layers += [nn.Conv2d(cin, 1, base, 1, 0, bias=False), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        _dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to logits (N, 1)."""
        return self.net(x)


def _dcgan_init(model: nn.Module) -> None:
    """The DCGAN initialisation: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
