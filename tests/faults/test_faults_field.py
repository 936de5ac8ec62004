"""The correlated Gaussian field: exact correlation exp(-λ d), variance, non-PD fallback."""

from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch
from conftest import generators

from cimtest.faults import sample_field
from cimtest.faults.field import (
    _axes_indefinite,
    _clip_spectrum,
    _fast_size,
    _sqrt_spectrum,
    _wrapped_covariance,
)

LAM = 0.2


@pytest.fixture(scope="module")
def fields():
    """1000 fields of 64x64 (500 chips x 2 arrays), λ = 0.2: an exact (PD) embedding."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = sample_field((2, 64, 64), LAM, generators(500))
    assert drawn.shape == (500, 2, 64, 64) and drawn.dtype == torch.float32
    return drawn.reshape(1000, 64, 64)


def lag_product(x: torch.Tensor, di: int, dj: int) -> float:
    """Mean of x[i, j] * x[i + di, j + dj] over all fields and cells (di, dj >= 0)."""
    rows, cols = x.shape[-2:]
    return (x[:, : rows - di, : cols - dj] * x[:, di:, dj:]).mean().item()


def test_marginal_mean_and_variance(fields):
    assert abs(fields.mean().item()) < 0.01
    assert fields.pow(2).mean().item() == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize(
    "di, dj", [(1, 0), (0, 1), (2, 0), (0, 2), (4, 0), (0, 4), (8, 0), (0, 8), (3, 4), (1, 1)]
)
def test_correlation_is_exp_of_euclidean_distance(fields, di, dj):
    expected = math.exp(-LAM * math.hypot(di, dj))
    assert lag_product(fields, di, dj) == pytest.approx(expected, abs=0.02)


def test_arrays_are_independent(fields):
    pairs = fields.reshape(500, 2, 64, 64)
    assert abs((pairs[:, 0] * pairs[:, 1]).mean().item()) < 0.02
    assert abs((pairs[:, 0, :, :60] * pairs[:, 1, :, 4:]).mean().item()) < 0.02


def test_chip_independent_of_batch_and_threads():
    batch = sample_field((3, 10, 7), 0.5, generators(4))
    assert batch.shape == (4, 3, 10, 7)
    alone = sample_field((3, 10, 7), 0.5, generators(1, first=2))
    assert torch.equal(alone[0], batch[2])
    threads = torch.get_num_threads()
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            assert torch.equal(sample_field((3, 10, 7), 0.5, generators(4)), batch)
    finally:
        torch.set_num_threads(threads)
    assert sample_field((10, 7), 0.5, generators(4)).shape == (4, 10, 7)


def test_single_row_grid_is_exact():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = sample_field((1, 40), 0.1, generators(2000))[:, 0]
    assert (x[:, :-2] * x[:, 2:]).mean().item() == pytest.approx(math.exp(-0.2), abs=0.03)


def test_padding_is_enlarged_before_clipping():
    # 16x10 with λ = 0.2: the minimal 32x20 torus is indefinite, its doubling is not
    root, error = _sqrt_spectrum(16, 10, 0.2)
    assert error == 0.0
    assert root.shape == (64, 40)


def test_non_positive_definite_embedding_is_clipped_and_logged(caplog):
    # λ = 0.01 on an 8x8 array: long-range correlation, every torus tried is indefinite
    with caplog.at_level(logging.INFO, logger="cimtest.faults.field"):
        x = sample_field((8, 8), 0.01, generators(3000))
    assert "correlation error" in caplog.text
    root, error = _sqrt_spectrum(8, 8, 0.01)
    assert 0 < error < 0.02
    assert root.double().pow(2).sum().item() == pytest.approx(1.0, abs=1e-6)
    assert x.pow(2).mean().item() == pytest.approx(1.0, rel=0.1)
    # E[(x_a - x_b)^2] / 2 = 1 - correlation, estimated with a small relative error
    half_square = ((x[:, 0, 0] - x[:, 7, 7]) ** 2).mean().item() / 2
    assert half_square == pytest.approx(1 - math.exp(-0.01 * math.hypot(7, 7)), rel=0.15)


def _reference_sqrt_spectrum(rows: int, cols: int, lam: float) -> tuple[torch.Tensor, float]:
    """The embedding as first written: the full 2-D FFT of every torus tried."""
    m1, m2 = _fast_size(2 * rows - 1), _fast_size(2 * cols - 1)
    for _ in range(3):
        eig = torch.fft.fft2(_wrapped_covariance(m1, m2, lam)).real
        if eig.min() >= -1e-8 * eig.max():
            return torch.sqrt(eig.clamp(min=0) / (m1 * m2)).float(), 0.0
        m1, m2 = (_fast_size(2 * m1) if rows > 1 else m1), (_fast_size(2 * m2) if cols > 1 else m2)
    m1, m2 = _fast_size(2 * rows - 1), _fast_size(2 * cols - 1)
    base = _wrapped_covariance(m1, m2, lam)
    eig = _clip_spectrum(torch.fft.fft2(base).real)
    error = float((torch.fft.ifft2(eig).real - base)[:rows, :cols].abs().max())
    return torch.sqrt(eig / (m1 * m2)).float(), error


@pytest.mark.parametrize("shape, lam", [
    ((16, 10), 0.2), ((27, 16), 0.1), ((8, 8), 0.01), ((64, 64), 0.001), ((3, 4), 0.2),
    ((1, 40), 0.1), ((40, 1), 0.01), ((288, 128), 0.01), ((64, 64), 0.1), ((5, 7), 0.5)])
def test_spectrum_equals_the_full_fft_of_every_torus(shape, lam):
    """The axes' test only skips tori the full 2-D FFT would reject: the same torus, bits
    and error as the reference that transforms every torus."""
    root, error = _sqrt_spectrum(*shape, lam)
    expected, expected_error = _reference_sqrt_spectrum(*shape, lam)
    assert torch.equal(root, expected) and error == expected_error


@pytest.mark.parametrize("m1, m2, lam", [
    (15, 15, 0.01), (54, 32, 0.1), (108, 64, 0.1), (1, 9, 0.3), (7, 1, 0.2), (128, 128, 0.1),
    (576, 256, 0.01), (30, 31, 0.2)])
def test_axes_test_reads_the_axes_of_the_full_spectrum(m1, m2, lam):
    eig = torch.fft.fft2(_wrapped_covariance(m1, m2, lam)).real
    axes = min(eig[0].min().item(), eig[:, 0].min().item())
    assert _axes_indefinite(m1, m2, lam) == (axes < -1e-8 * eig.max().item())


def test_clip_spectrum_keeps_the_variance():
    eig = torch.tensor([5.0, 2.0, -1.0, 0.5, -0.5], dtype=torch.float64)
    clipped = _clip_spectrum(eig)
    assert clipped.min() >= 0
    assert clipped.sum().item() == pytest.approx(eig.sum().item())
    assert clipped[2] == 0 and clipped[4] == 0
    assert torch.allclose(
        clipped[[0, 1, 3]] / eig[[0, 1, 3]], torch.full((3,), 6 / 7.5, dtype=torch.float64)
    )


def test_spectrum_is_cached():
    _sqrt_spectrum(12, 9, 0.7)
    hits = _sqrt_spectrum.cache_info().hits
    sample_field((12, 9), 0.7, generators(2))
    assert _sqrt_spectrum.cache_info().hits == hits + 1


@pytest.mark.parametrize("shape", [(5, 7), (7, 4), (1, 9), (9, 1)])
def test_full_covariance_of_small_odd_grids(shape):
    """Every pair of cells, edges and corners included, of grids whose last columns sit at
    the edge of the half spectrum the Hartley transform reads: covariance exp(-λ d)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = sample_field((4, *shape), 0.5, generators(2000)).reshape(8000, -1).double()
    rows, cols = shape
    i, j = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    pos = torch.stack([i.flatten(), j.flatten()], 1).double()
    expected = torch.exp(-0.5 * torch.cdist(pos, pos))
    assert (x.T @ x / x.shape[0] - expected).abs().max().item() < 0.05
