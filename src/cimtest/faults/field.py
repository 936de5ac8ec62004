"""Gaussian random fields on crossbar arrays, with correlation ``exp(-lam * d)``.

Exact sampling by circulant embedding (Dietrich & Newsam, SIAM J. Sci. Comput. 18(4), 1997):
the (R, C) grid is embedded in a torus of ``M1 x M2 >= (2R - 1) x (2C - 1)`` cells (5-smooth
sizes, fast for FFTs), where the covariance of the wrapped distances is circulant, so its
eigenvalues are the FFT of one row and a field costs one FFT of the torus, O(RC log RC),
never a dense (RC)² covariance. Each field is the 2-D Hartley transform (``Re - Im`` of the
FFT) of real white noise scaled by the square root of the eigenvalues: exact, because the
spectrum is symmetric (``Λ(k) = Λ(-k)``), and half the noise and FFT of the complex route
that keeps one of two fields. Chips are drawn on torch's threads.

If the embedding has eigenvalues below ``-1e-8 * max`` (it is not positive semi-definite,
which for ``exp(-lam d)`` in 2-D happens when ``lam`` is small, e.g. the 0.001 of EGIS), the
torus is doubled up to twice. If it stays indefinite, the spectrum of the smallest torus
(the cheapest to sample) is clipped at 0 and rescaled so that every cell's variance stays
exactly 1; the largest correlation error of the now approximate field is logged at INFO
(docs/faults.md tabulates it: below 0.02 at the presets' λ = 0.001). Each torus is first
tested on its frequency axes, which needs no 2-D FFT of a torus that cannot be used."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import torch

from cimtest._threads import parallel_map

__all__ = ["sample_field"]

_logger = logging.getLogger(__name__)

_TOLERANCE = 1e-8
"""Eigenvalues above ``-_TOLERANCE * max`` count as round-off and are set to 0."""
_DOUBLINGS = 2
"""How many times the torus is doubled before the spectrum is clipped."""
_SLICE_CELLS = 1 << 22
"""Cells of the covariance built at once by the axes' test (32 MiB of float64)."""


def sample_field(
    shape: tuple[int, ...],
    lam: float,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """Draw zero-mean, unit-variance Gaussian fields with correlation ``exp(-lam * d)``.

    ``d`` is the Euclidean distance between two cells of one (R, C) grid, in cell pitches.

    Parameters
    ----------
    shape : tuple of int
        ``(R, C)`` for one field per chip, or ``(A, R, C)`` for ``A`` independent fields
        per chip (e.g. the arrays of a layer).
    lam : float
        Decay rate λ > 0 of the correlation per cell pitch.
    generators : sequence of torch.Generator
        One per chip; chip ``b``'s fields are drawn from ``generators[b]`` only, so they do
        not depend on the other chips.

    Returns
    -------
    torch.Tensor
        float32 of shape ``(B, *shape)``, ``B = len(generators)``, on the generators' device
        (the CPU without generators).
    """
    *lead, rows, cols = shape
    n_fields = math.prod(lead)
    root, error = _sqrt_spectrum(int(rows), int(cols), float(lam))
    if error:
        _logger.info("correlated field %dx%d, lambda=%g: embedding clipped, largest "
                     "correlation error %.1e (docs/faults.md)", rows, cols, lam, error)
    device = generators[0].device if generators else torch.device("cpu")
    root = root.to(device)
    out = torch.empty(len(generators), n_fields, rows, cols, device=device)

    def draw(chip: int) -> None:
        noise = torch.randn((n_fields, *root.shape), generator=generators[chip], device=device)
        # Columns up to cols <= (M2 + 1) / 2 are all in the half spectrum rfft2 returns.
        spectrum = torch.fft.rfft2(noise.mul_(root))[..., :rows, :cols]
        torch.sub(spectrum.real, spectrum.imag, out=out[chip])

    parallel_map(draw, range(len(generators)))
    return out.reshape(len(generators), *shape)


@functools.lru_cache(maxsize=64)
def _sqrt_spectrum(rows: int, cols: int, lam: float) -> tuple[torch.Tensor, float]:
    """``sqrt(eigenvalues / (M1 * M2))`` of the embedding (float32 (M1, M2)) and the largest
    correlation error it makes (0.0 when exact). Cached; callers must not modify it."""
    minimal = (_fast_size(2 * rows - 1), _fast_size(2 * cols - 1))
    m1, m2 = minimal
    for _ in range(_DOUBLINGS + 1):
        if not _axes_indefinite(m1, m2, lam):
            eig = torch.fft.fft2(_wrapped_covariance(m1, m2, lam)).real
            if eig.min() >= -_TOLERANCE * eig.max():
                error = 0.0
                break
        m1 = _fast_size(2 * m1) if rows > 1 else m1
        m2 = _fast_size(2 * m2) if cols > 1 else m2
    else:
        m1, m2 = minimal
        base = _wrapped_covariance(m1, m2, lam)
        eig = _clip_spectrum(torch.fft.fft2(base).real)
        realised = torch.fft.ifft2(eig).real
        error = float((realised - base)[:rows, :cols].abs().max())
    root = torch.sqrt(eig.clamp(min=0) / (m1 * m2)).to(torch.float32)
    return root, error


def _axes_indefinite(m1: int, m2: int, lam: float) -> bool:
    """Whether an eigenvalue of the (m1, m2) embedding on the frequency axes is below
    ``-_TOLERANCE * max``: a sufficient test for an indefinite embedding that needs only the
    row and column sums (the axes' eigenvalues are their 1-D FFTs; the largest eigenvalue is
    the total, as the covariance is positive), built from the distinct torus distances in
    bounded slices. The negative eigenvalues of ``exp(-lam d)`` embeddings lie on the axes in
    every case tried, so the full 2-D FFT of a torus too large to help is skipped (a VGG-16
    layer's second doubling is 151 M cells: ~5 GB and most of the time)."""
    (di, wi, ii), (dj, wj, jj) = _distances(m1), _distances(m2)
    rows = torch.empty(len(di), dtype=torch.float64)
    cols = torch.zeros(len(dj), dtype=torch.float64)
    step = max(1, _SLICE_CELLS // len(dj))
    for start in range(0, len(di), step):
        part = slice(start, start + step)
        block = torch.exp(-lam * torch.sqrt(di[part, None] ** 2 + dj[None, :] ** 2))
        rows[part] = block @ wj
        cols += wi[part] @ block
    rows, cols = rows[ii], cols[jj]
    floor = -_TOLERANCE * float(rows.sum())
    return bool(torch.fft.fft(rows).real.min() < floor or torch.fft.fft(cols).real.min() < floor)


def _distances(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct torus distances ``0..m // 2`` of a cycle of `m` cells (float64), how many
    cells lie at each, and each cell's index into them."""
    d = torch.arange(m // 2 + 1, dtype=torch.float64)
    weight = torch.full_like(d, 2.0)
    weight[0] = 1.0
    if m % 2 == 0:
        weight[-1] = 1.0
    index = torch.arange(m)
    return d, weight, torch.minimum(index, m - index)


def _clip_spectrum(eig: torch.Tensor) -> torch.Tensor:
    """Set negative eigenvalues to 0 and rescale so their sum, hence the field's marginal
    variance (the mean eigenvalue of a circulant covariance), is unchanged."""
    clipped = eig.clamp(min=0)
    return clipped * (eig.sum() / clipped.sum())


def _wrapped_covariance(m1: int, m2: int, lam: float) -> torch.Tensor:
    """First row of the circulant embedding: ``exp(-lam * d)`` for the torus distances of an
    (m1, m2) torus from cell (0, 0), float64."""
    i = torch.arange(m1, dtype=torch.float64)
    j = torch.arange(m2, dtype=torch.float64)
    di, dj = torch.minimum(i, m1 - i), torch.minimum(j, m2 - j)
    return torch.exp(-lam * torch.sqrt(di[:, None] ** 2 + dj[None, :] ** 2))


def _fast_size(n: int) -> int:
    """Smallest integer ``>= n`` whose prime factors are 2, 3 and 5."""
    while True:
        m = n
        for prime in (2, 3, 5):
            while m % prime == 0:
                m //= prime
        if m == 1:
            return n
        n += 1
