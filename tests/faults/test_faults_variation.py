"""Statistics of the variations: multiplicative, additive and RRAM (EGIS §III)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import crossbar_slot, generators, grid_weights, toy_layout

from cimtest.faults import (
    AdditiveVariation,
    MultiplicativeVariation,
    RRAMVariation,
    WeightLayout,
)


def constant_weights(layout: WeightLayout, chips: int, code: int = 100) -> torch.Tensor:
    """float32 (chips, P): every weight at `code` times its layer's scale."""
    row = torch.cat([torch.full((s.numel,), code * s.scale) for s in layout.layers])
    return row.expand(chips, -1).contiguous()


def relative_error(fault, layout: WeightLayout, chips: int, first: int = 0) -> torch.Tensor:
    """(chips, P): ε of ``W' = W (1 + ε)`` for chips ``first ..`` of seed 0."""
    weights = constant_weights(layout, chips)
    out = fault.apply(weights.clone(), layout, generators(chips, first=first))
    return out / weights - 1


def mean_correlation(layout: WeightLayout, lam: float) -> float:
    """The mean over every pair of the layout's P cells (i = j included) of the field's
    correlation: ``exp(-lam * d)`` for two cells of one crossbar array, d apart in cell
    pitches, 0 between arrays and between layers (the law `RRAMVariation` documents)."""
    total = 0.0
    for slot in layout.layers:
        a, r, c = np.unravel_index(slot.crossbar_index.numpy(), slot.array_shape)
        same = a[:, None] == a[None, :]
        d = np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :])
        total += float(np.exp(-lam * d)[same].sum())
    return total / layout.numel**2


def test_multiplicative_moments():
    eps = relative_error(MultiplicativeVariation(0.05), toy_layout(), 60)
    assert abs(eps.mean().item()) < 4 * 0.05 / math.sqrt(eps.numel())
    assert eps.var().item() == pytest.approx(0.05**2, rel=0.03)


def test_additive_moments_per_layer():
    layout, chips, eta = toy_layout(), 100, 0.03
    weights = grid_weights(layout, chips)
    out = AdditiveVariation(eta).apply(weights.clone(), layout, generators(chips))
    for slot in layout.layers:
        noise = (out - weights)[:, slot.offset : slot.stop] / slot.max_abs
        assert abs(noise.mean().item()) < 4 * eta / math.sqrt(noise.numel())
        assert noise.var().item() == pytest.approx(eta**2, rel=0.06)


@pytest.mark.parametrize(
    "kind",
    [MultiplicativeVariation, AdditiveVariation, lambda level: RRAMVariation(level, lam=0.5)],
    ids=["mult", "add", "rram"],
)
def test_error_scales_with_level_for_the_same_chip(kind):
    layout = toy_layout()
    weights = grid_weights(layout, 3)
    small = kind(0.02).apply(weights.clone(), layout, generators(3)) - weights
    large = kind(0.04).apply(weights.clone(), layout, generators(3)) - weights
    assert torch.allclose(large, 2 * small, atol=1e-6)


def test_rram_systematic_part_is_shared_by_the_chip():
    eps = relative_error(RRAMVariation(0.2, sys=1.0, cor=0.0), toy_layout(), 400)
    per_chip = eps[:, :1]
    assert torch.allclose(eps, per_chip.expand_as(eps), atol=1e-5)
    # one N(0, 0.2^2) draw per chip: the sample variance of 400 normals has relative sd
    # sqrt(2 / 399) = 0.071; 3.29 sd (a correct draw fails 1 time in 1,000) is 0.23
    assert per_chip.var().item() == pytest.approx(0.2**2, rel=3.29 * math.sqrt(2 / 399))


def test_rram_shares_and_total_variance():
    layout, sigma, chips = toy_layout(), 0.2, 500
    eps = relative_error(RRAMVariation(sigma, sys=0.25, cor=0.25, lam=0.3), layout, chips)
    assert abs(eps.mean().item()) < 0.01
    assert eps.pow(2).mean().item() == pytest.approx(sigma**2, rel=0.06)
    # the chip mean is ε_sys plus the means of the other parts over the P = 952 cells:
    # Var = σ² (sys + cor c + rand / P), c the mean correlation of two cells (1.04 x sys σ²
    # here). The chip means are normal: the sample variance of 500 has relative sd
    # sqrt(2 / 499) = 0.063, and 3.29 sd is 0.21
    expected = sigma**2 * (0.25 + 0.25 * mean_correlation(layout, 0.3) + 0.5 / layout.numel)
    assert eps.mean(1).var().item() == pytest.approx(expected, rel=3.29 * math.sqrt(2 / 499))
    # the rest, within a chip, carries the correlated and random parts: 0.75 σ²
    assert eps.var(1).mean().item() == pytest.approx(0.75 * sigma**2, rel=0.1)


def test_rram_correlated_part_follows_the_crossbar():
    lam, chips = 0.3, 300
    layout = WeightLayout((crossbar_slot("w", 0, 32, 32, (16, 16)),), 1)
    eps = relative_error(RRAMVariation(1.0, sys=0.0, cor=1.0, lam=lam), layout, chips)
    slot = layout.layers[0]
    arrays = torch.empty(chips, math.prod(slot.array_shape))
    arrays[:, slot.crossbar_index] = eps
    arrays = arrays.reshape(chips, *slot.array_shape)
    assert arrays.pow(2).mean().item() == pytest.approx(1.0, rel=0.05)
    for d in (1, 2):
        along_rows = (arrays[..., d:, :] * arrays[..., :-d, :]).mean().item()
        along_cols = (arrays[..., :, d:] * arrays[..., :, :-d]).mean().item()
        assert along_rows == pytest.approx(math.exp(-lam * d), abs=0.04)
        assert along_cols == pytest.approx(math.exp(-lam * d), abs=0.04)
    across_arrays = (arrays[:, 0] * arrays[:, 1]).mean().item()
    assert abs(across_arrays) < 0.03
