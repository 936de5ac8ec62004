"""The chip's own remedies read each layer with the test's inputs: global drift
compensation undoes any per-layer scale exactly, re-calibration's gain is the least-squares
one, and both run on linear and convolutional layers of a user-style model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cimtest.engine import Population
from cimtest.field import LayerReads


def conv_net() -> nn.Module:
    """A user-style CNN (no BatchNorm): a padded conv, a strided conv, a linear head."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 3 * 3, 10)).eval()


@pytest.fixture(scope="module")
def reads():
    population = Population(conv_net(), "mult:eta=0.2", seed=4, n=8)
    inputs = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return population, LayerReads(population.mapped, inputs)


def _layer_scaled(reads: LayerReads, rows: torch.Tensor, factors: list[float]) -> torch.Tensor:
    out = rows.clone()
    for (lo, hi), f in zip(reads.spans, factors, strict=True):
        out[:, lo:hi] *= f
    return out


def test_compensation_undoes_a_per_layer_scale(reads):
    population, layer_reads = reads
    rows = population.weights(range(8))
    reference = layer_reads.sizes(rows)
    shrunk = _layer_scaled(layer_reads, rows, [0.7, 0.35, 0.9])
    restored = layer_reads.compensate(shrunk, reference)
    # float32 rows scaled twice by factors computed in float64: a few units of rounding
    torch.testing.assert_close(restored, rows, rtol=1e-6, atol=1e-7)


def test_recalibration_gain_is_the_inverse_of_a_layer_scale(reads):
    _, layer_reads = reads
    ideal = layer_reads.mapped.reference[None]
    gains = layer_reads.gains(_layer_scaled(layer_reads, ideal, [0.5, 2.0, 0.8]))[0]
    torch.testing.assert_close(gains, torch.tensor([2.0, 0.5, 1.25], dtype=torch.float64),
                               rtol=1e-6, atol=0)


def test_recalibration_gain_is_the_least_squares_fit(reads):
    population, layer_reads = reads
    row = population.weights([3])[0]
    gains = layer_reads.gains(row[None])[0]
    for y, ideal, g in zip(layer_reads.read(row), layer_reads.ideal, gains, strict=True):
        # the derivative of |ideal - g y|^2 in g vanishes at the fitted gain
        assert abs(float((y * (ideal - g * y)).sum())) < 1e-9 * float((ideal * ideal).sum())


def test_reads_exclude_the_bias(reads):
    _, layer_reads = reads
    zero = torch.zeros_like(layer_reads.mapped.reference)
    assert all(float(y.abs().max()) == 0 for y in layer_reads.read(zero))


def test_compensated_uniform_drift_is_the_programmed_chip(reads):
    """With one ν for every weight, drift is one factor per layer, which the compensation
    removes: the chip at one year reads as it did when programmed."""
    population, layer_reads = reads
    aged = population.with_faults("mult:eta=0.2+drift:t=0,nu=0.2,nu_sd=0")
    programmed = aged.at(0).weights(range(8))
    reference = layer_reads.sizes(programmed)
    year = aged.at(31557600).weights(range(8))
    assert not torch.allclose(year, programmed, rtol=0.1)
    torch.testing.assert_close(layer_reads.compensate(year, reference), programmed,
                               rtol=1e-5, atol=1e-7)
