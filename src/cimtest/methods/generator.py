"""EGIS's image generator (paper 2 Table I, adapted to any (C, H, W)) and its entropy loss.

The generator is trained on the ideal chip alone so that its predictions on the images have a
low mean per-image entropy H_c and a high entropy H_s of the batch-mean prediction: loss
``-exp(H_s - H_c)`` (paper 2 eq. 3, 5), Adam.

Adaptation to the model's input (C, H, W): let S = max(H, W) rounded up to a power of two.
Layer 1 maps the latent (100) to a 2x2 map of 256 channels (kernel 2); layers 2-4
(256→128→64→32) and the output layer 5 (32→C) each double the side (kernel 4, stride 2)
while it is below S and keep it (kernel 3, stride 1, padding 1) once S is reached; for
S > 32 extra 32-channel doubling layers (with BN + ReLU) precede layer 5. BN + ReLU follow
every hidden layer, tanh the output. For 32x32 inputs this is Table I exactly, with C output
channels in layer 5 (Table I's "32" cannot be an image); for 8x8 digits layers 2-3 double
and 4-5 keep the side. Non-square or non-power-of-two sizes are resized bilinearly to
(H, W). The tanh output is mapped affinely onto the model's normalised input range
(`cimtest.zoo.dcgan.ToInputRange`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cimtest.exceptions import ConfigError
from cimtest.progress import Progress, report
from cimtest.zoo.dcgan import LATENT_DIM, ToInputRange

__all__ = ["FALLBACK_RANGE", "EGISGenerator", "default_range", "egis_loss", "entropies",
           "train_generator"]

_logger = logging.getLogger(__name__)

FALLBACK_RANGE = (-1.0, 1.0)
"""The input range of a model whose range is not known (tanh's own)."""

_WIDTHS = (256, 128, 64, 32)
"""Output channels of Table I's layers 1-4."""


def entropies(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """H_c and H_s of paper 2 eq. 3 and 5 from a batch of logits (natural log).

    Parameters
    ----------
    logits : torch.Tensor
        float (B, M): raw outputs; softmax is applied here.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Scalars: H_c, the mean over the batch of each prediction's entropy (0 when every
        prediction is one-hot), and H_s, the entropy of the batch-mean prediction (log M
        when the batch is balanced over the M classes).
    """
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    h_c = -(p * log_p).sum(dim=1).mean()
    mean_p = p.mean(dim=0)
    h_s = -(mean_p * torch.log(mean_p.clamp_min(1e-30))).sum()
    return h_c, h_s


def egis_loss(logits: torch.Tensor) -> torch.Tensor:
    """The generator's loss ``-exp(H_s - H_c)`` (paper 2 §IV-B); minimum -M."""
    h_c, h_s = entropies(logits)
    return -torch.exp(h_s - h_c)


class EGISGenerator(nn.Module):
    """Latent (B, 100) → images (B, C, H, W) in ``input_range`` (paper 2 Table I, adapted).

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W) of one model input.
    input_range : (float, float)
        (low, high) of a normalised pixel; tanh's [-1, 1] is mapped onto it.
    latent_dim : int
        Length of the latent (paper: 100).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        input_range: tuple[float, float] = (-1.0, 1.0),
        latent_dim: int = LATENT_DIM,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"EGIS needs image inputs (C, H, W); got {tuple(input_shape)}")
        channels, height, width = (int(v) for v in input_shape)
        side = max(2, 1 << math.ceil(math.log2(max(height, width))))
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, _WIDTHS[0], 2, 1, 0, bias=False)]
        layers += [nn.BatchNorm2d(_WIDTHS[0]), nn.ReLU()]
        doublings = int(math.log2(side)) - 1  # from the 2x2 map of layer 1 to side x side
        hidden = list(_WIDTHS[1:]) + [_WIDTHS[-1]] * max(0, doublings - len(_WIDTHS))
        size, width_in = 2, _WIDTHS[0]
        for out in hidden:
            layers += [_upsample(width_in, out, size < side), nn.BatchNorm2d(out), nn.ReLU()]
            size, width_in = min(2 * size, side), out
        layers += [_upsample(width_in, channels, size < side), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.to_range = ToInputRange(*input_range)
        self.input_shape = (channels, height, width)
        self.latent_dim = latent_dim
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (B, latent_dim) to images (B, C, H, W)."""
        t = self.net(z.reshape(z.shape[0], -1, 1, 1))
        if tuple(t.shape[2:]) != self.input_shape[1:]:
            t = F.interpolate(t, size=self.input_shape[1:], mode="bilinear", align_corners=False)
        return self.to_range(t)


def _upsample(c_in: int, c_out: int, double: bool) -> nn.ConvTranspose2d:
    """Kernel 4 stride 2 (doubles the side) or kernel 3 stride 1 (keeps it)."""
    if double:
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
    return nn.ConvTranspose2d(c_in, c_out, 3, 1, 1, bias=False)


def _init(model: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def train_generator(
    generator: EGISGenerator,
    ideal: nn.Module,
    steps: int,
    lr: float,
    batch: int,
    gen: torch.Generator,
    progress: Progress | None = None,
) -> np.ndarray:
    """Adam on ``-exp(H_s - H_c)`` (paper 2 eq. 3, 5) on the ideal chip `ideal`; returns
    float64 (steps, 2) of (H_c, H_s) per step (paper Fig. 3)."""
    optimiser = torch.optim.Adam(generator.parameters(), lr=lr)
    curve = np.empty((steps, 2), dtype=np.float64)
    generator.train()
    for step in range(steps):
        z = torch.randn(batch, generator.latent_dim, generator=gen)
        logits = ideal(generator(z)).reshape(batch, -1)
        h_c, h_s = entropies(logits)
        loss = -torch.exp(h_s - h_c)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        curve[step] = (h_c.item(), h_s.item())
        report(progress, step + 1, steps,
               f"generator: H_c {curve[step, 0]:.3f} H_s {curve[step, 1]:.3f}")
    _logger.info("egis generator: H_c %.3f -> %.3f, H_s %.3f -> %.3f in %d steps",
                 curve[0, 0], curve[-1, 0], curve[0, 1], curve[-1, 1], steps)
    return curve


def default_range(data_size: int | None) -> tuple[float, float]:
    """The digits' normalised pixel range for zoo models, else (-1, 1)."""
    if data_size is None:
        _logger.warning("egis: no input range known for this model; using %s", FALLBACK_RANGE)
        return FALLBACK_RANGE
    from cimtest.data import digits

    return digits(size=data_size).input_range
