"""EGIS's input generator (paper 2 Table I, adapted to inputs of every rank) and its loss.

The generator is trained on the ideal chip alone so that its predictions on the inputs have a
low mean per-input entropy H_c and a high entropy H_s of the batch-mean prediction: loss
``-exp(H_s - H_c)`` (paper 2 eq. 3, 5), Adam.

Adaptation to an image input (C, H, W): let S = max(H, W) rounded up to a power of two.
Layer 1 maps the latent (100) to a 2x2 map of 256 channels (kernel 2); layers 2-4
(256→128→64→32) and the output layer 5 (32→C) each double the side (kernel 4, stride 2)
while it is below S and keep it (kernel 3, stride 1, padding 1) once S is reached; for
S > 32 extra 32-channel doubling layers (with BN + ReLU) precede layer 5. BN + ReLU follow
every hidden layer, tanh the output. For 32x32 inputs this is Table I exactly, with C output
channels in layer 5 (Table I's "32" cannot be an image); for 8x8 digits layers 2-3 double
and 4-5 keep the side. Non-square or non-power-of-two sizes are resized bilinearly to
(H, W).

A sequence (C, L) gets the same plan in one dimension: ConvTranspose1d, BatchNorm1d, ReLU
and tanh with the same widths, kernels and strides; layer 1 maps the latent to a map of
length 2 and 256 channels, the layers double the length until S = L rounded up to a power
of two and keep it after, with the same extra 32-channel doubling layers when S > 32, and
the output is resized linearly to L when L is not S.

A feature vector (F) is made by the one-dimensional generator with one channel and length
F, flattened to (F). This keeps Table I's structure (the same layers, widths, kernels,
batch normalisation, initialisation and tanh), so the paper's recipe (Adam at 3e-4, the
DCGAN initialisation) applies at every rank unchanged, where a fully connected generator
would be a new network with hyper-parameters of its own that neither paper gives. Its
price is a prior the features need not share: the transposed convolutions make
neighbouring features vary together. The last layer still has 32 channels and a kernel
at every position, and the entropy training on a Linear model without normalisation
lowers H_c and raises H_s as it does on images (`tests/methods/test_egis_ranks.py`).

At every rank the tanh output is mapped affinely onto the model's normalised input range
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
    """Latent (B, 100) → inputs (B, *input_shape) in ``input_range`` (paper 2 Table I, adapted).

    Parameters
    ----------
    input_shape : tuple of int
        One model input: (F) features, (C, L) a sequence or (C, H, W) an image.
    input_range : (float, float)
        (low, high) of a normalised input value; tanh's [-1, 1] is mapped onto it.
    latent_dim : int
        Length of the latent (paper: 100).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        input_range: tuple[float, float] = (-1.0, 1.0),
        latent_dim: int = LATENT_DIM,
    ) -> None:
        super().__init__()
        shape = tuple(int(v) for v in input_shape)
        if not 1 <= len(shape) <= 3 or min(shape) < 1:
            raise ConfigError("EGIS's generator makes inputs (F), (C, L) or (C, H, W) of "
                              f"positive sizes; got {tuple(input_shape)}")
        channels, sizes = (1, shape) if len(shape) == 1 else (shape[0], shape[1:])
        conv, norm = _LAYERS[len(sizes)]
        side = max(2, 1 << math.ceil(math.log2(max(sizes))))
        layers: list[nn.Module] = [conv(latent_dim, _WIDTHS[0], 2, 1, 0, bias=False)]
        layers += [norm(_WIDTHS[0]), nn.ReLU()]
        doublings = int(math.log2(side)) - 1  # from the 2-long map of layer 1 to side
        hidden = list(_WIDTHS[1:]) + [_WIDTHS[-1]] * max(0, doublings - len(_WIDTHS))
        size, width_in = 2, _WIDTHS[0]
        for out in hidden:
            layers += [_upsample(conv, width_in, out, size < side), norm(out), nn.ReLU()]
            size, width_in = min(2 * size, side), out
        layers += [_upsample(conv, width_in, channels, size < side), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.to_range = ToInputRange(*input_range)
        self.input_shape = shape
        self.latent_dim = latent_dim
        self._sizes = tuple(sizes)
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (B, latent_dim) to inputs (B, *input_shape)."""
        t = self.net(z.reshape(z.shape[0], -1, *([1] * len(self._sizes))))
        if tuple(t.shape[2:]) != self._sizes:
            mode = "bilinear" if len(self._sizes) == 2 else "linear"
            t = F.interpolate(t, size=self._sizes, mode=mode, align_corners=False)
        return self.to_range(t.reshape(t.shape[0], *self.input_shape))


_LAYERS = {1: (nn.ConvTranspose1d, nn.BatchNorm1d), 2: (nn.ConvTranspose2d, nn.BatchNorm2d)}
"""Transposed convolution and batch normalisation by the number of spatial axes."""


def _upsample(conv: type[nn.Module], c_in: int, c_out: int, double: bool) -> nn.Module:
    """Kernel 4 stride 2 (doubles the side) or kernel 3 stride 1 (keeps it)."""
    if double:
        return conv(c_in, c_out, 4, 2, 1, bias=False)
    return conv(c_in, c_out, 3, 1, 1, bias=False)


def _init(model: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose1d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
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
    """Adam on ``-exp(H_s - H_c)`` (paper 2 eq. 3, 5) on the ideal chip `ideal`, latents drawn
    by `gen` on its device (where `generator` and `ideal` live); returns float64 (steps, 2)
    of (H_c, H_s) per step (paper Fig. 3)."""
    optimiser = torch.optim.Adam(generator.parameters(), lr=lr)
    curve = np.empty((steps, 2), dtype=np.float64)
    generator.train()
    for step in range(steps):
        z = torch.randn(batch, generator.latent_dim, generator=gen, device=gen.device)
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


def default_range(dataset: str | None, input_shape: tuple[int, ...]) -> tuple[float, float]:
    """The normalised input range of a zoo model's own built-in data set (at its input
    shape), else (-1, 1)."""
    if dataset is None:
        _logger.warning("egis: no input range known for this model; using %s", FALLBACK_RANGE)
        return FALLBACK_RANGE
    from cimtest.data.builtin import builtin_splits

    if dataset == "mnist1d":  # its range is the training set's: no test set needed
        from cimtest.data.mnist1d import input_range

        return input_range()
    return builtin_splits(dataset, input_shape).input_range
