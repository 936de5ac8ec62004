"""Statistics and semantics of the cell faults: bit-flip, level-flip and stuck-at."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import generators, grid_weights, toy_layout
from scipy import stats

from cimtest.faults import (
    BitFlip,
    FaultStack,
    LevelFlip,
    MultiplicativeVariation,
    StuckAt,
    WeightLayout,
)
from cimtest.faults.cell import _distinct

BIG = (("w", 64, 64, None),)
"""One layer of 4096 weights."""


def scales(layout: WeightLayout) -> torch.Tensor:
    """float32 (P,): each weight's quantisation scale."""
    return torch.cat([torch.full((s.numel,), s.scale) for s in layout.layers])


def codes(weights: torch.Tensor, layout: WeightLayout) -> torch.Tensor:
    """int64 (B, P): the chips' current int8 codes."""
    return torch.clamp(torch.round(weights / scales(layout)), -128, 127).long()


def cell_levels(code: torch.Tensor, bits: int) -> torch.Tensor:
    """int64 (..., 8 / bits): levels of the cells of each code (cell 0 least significant)."""
    shifts = torch.arange(8 // bits) * bits
    return ((code & 0xFF).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)


def band(count: float, n: float, p: float, z: float = 3.29) -> None:
    """Assert `count` is inside the 99.9 % normal band of Binomial(n, p)."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    assert abs(count - mean) <= z * sd + 1, (count, mean, sd)


def uniform(counts: torch.Tensor) -> None:
    """Assert `counts` (over categories) is compatible with a uniform law (chi-square, 0.1 %)."""
    assert stats.chisquare(counts.double().numpy()).pvalue > 1e-3, counts


def test_bitflip_count_and_bit_positions():
    layout, chips, p = toy_layout(layers=BIG), 200, 2e-3
    weights = grid_weights(layout, chips)
    before = codes(weights, layout)
    after = codes(BitFlip(p).apply(weights, layout, generators(chips)), layout)
    flipped = cell_levels(before ^ after, 1)
    band(int(flipped.sum()), chips * layout.numel * 8, p)
    uniform(flipped.sum((0, 1)))
    per_chip = flipped.sum((1, 2)).double()
    # each chip's count is Binomial(N = 8 x 4,096 bits, p): variance N p (1 - p) = 65.4. The
    # sample variance of 200 counts has relative sd sqrt(2 / 199 + kurtosis / 200), with the
    # excess kurtosis (1 - 6 p (1 - p)) / (N p (1 - p)) = 0.015: 0.101; 3.29 sd is 0.33. A
    # count shared by a chip's bits (one draw per chip) would have variance N^2 p (1 - p).
    n, q = layout.numel * 8, p * (1 - p)
    rel = 3.29 * math.sqrt(2 / (chips - 1) + (1 - 6 * q) / (n * q) / chips)
    assert per_chip.var() == pytest.approx(n * q, rel=rel)


@pytest.mark.parametrize("p", [0.3, 0.6])
def test_dense_bitflips_in_one_weight_are_independent(p):
    layout, chips = toy_layout(layers=(("w", 32, 16, None),)), 40
    weights = grid_weights(layout, chips)
    before = codes(weights, layout)
    after = codes(BitFlip(p).apply(weights, layout, generators(chips)), layout)
    per_weight = cell_levels(before ^ after, 1).sum(-1).flatten()
    observed = torch.bincount(per_weight, minlength=9).double().numpy()
    expected = stats.binom.pmf(range(9), 8, p) * per_weight.numel()
    assert stats.chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_levelflip_moves_to_a_uniform_other_level(bits):
    layout, chips, p = toy_layout(layers=BIG), 50, 0.02
    weights = grid_weights(layout, chips)
    old = cell_levels(codes(weights, layout), bits)
    new = cell_levels(
        codes(LevelFlip(p, bits=bits).apply(weights, layout, generators(chips)), layout), bits
    )
    changed = old != new
    band(int(changed.sum()), old.numel(), p)
    uniform(changed.sum((0, 1)))
    if bits > 1:
        levels = 1 << bits
        table = torch.zeros(levels, levels)
        table.index_put_((old[changed], new[changed]), torch.ones(int(changed.sum())), True)
        assert torch.all(table.diagonal() == 0)
        chi2 = sum(
            stats.chisquare(torch.cat([row[:k], row[k + 1 :]]).numpy()).statistic
            for k, row in enumerate(table)
        )
        assert stats.chi2.sf(chi2, levels * (levels - 2)) > 1e-3


def test_levelflip_one_bit_is_bitflip_and_bits_default_to_layout():
    layout = toy_layout(bits_per_cell=4)
    weights = grid_weights(layout, 4)
    flip = BitFlip(0.05).apply(weights.clone(), layout, generators(4))
    level = LevelFlip(0.05, bits=1).apply(weights.clone(), layout, generators(4))
    assert torch.equal(flip, level)
    default = LevelFlip(0.05).apply(weights.clone(), layout, generators(4))
    four = LevelFlip(0.05, bits=4).apply(weights.clone(), layout, generators(4))
    assert torch.equal(default, four)
    assert not torch.equal(default, level)


def test_stuck_at_multi_level_cells():
    layout, chips, p, high = toy_layout(bits_per_cell=2, layers=BIG), 50, 0.01, 0.3
    start = torch.full((chips, layout.numel), 0b01010101 * layout.layers[0].scale)
    after = StuckAt(p, high=high).apply(start.clone(), layout, generators(chips))
    levels = cell_levels(codes(after, layout), 2)
    assert set(levels.unique().tolist()) <= {0, 1, 3}
    stuck = int((levels != 1).sum())
    band(stuck, levels.numel(), p)
    band(int((levels == 3).sum()), stuck, high)


def test_stuck_at_binary_cells():
    layout, chips, p, high = toy_layout(layers=BIG), 50, 0.01, 0.3
    scale = layout.layers[0].scale
    zeros = torch.zeros(chips, layout.numel)
    ones = torch.full((chips, layout.numel), -1 * scale)
    fault = StuckAt(p, high=high)
    set_high = cell_levels(codes(fault.apply(zeros, layout, generators(chips)), layout), 1)
    set_low = 1 - cell_levels(codes(fault.apply(ones, layout, generators(chips, 1)), layout), 1)
    band(int(set_high.sum()), set_high.numel(), p * high)
    band(int(set_low.sum()), set_low.numel(), p * (1 - high))


@pytest.mark.parametrize(
    "fault", [BitFlip(0.05), LevelFlip(0.05, bits=4), StuckAt(0.05)], ids=lambda f: f.kind
)
def test_cell_faults_stay_exactly_on_the_grid(fault):
    layout = toy_layout(bits_per_cell=2)
    out = fault.apply(grid_weights(layout, 3), layout, generators(3))
    expected = torch.cat(
        [codes(out, layout)[:, s.offset : s.stop].float() * s.scale for s in layout.layers], 1
    )
    assert torch.equal(out, expected)


def test_cell_fault_after_variation_keeps_the_residual():
    layout, chips = toy_layout(), 6
    weights = grid_weights(layout, chips)
    mult = MultiplicativeVariation(0.02)
    varied = mult.apply(weights.clone(), layout, generators(chips))
    both = FaultStack((mult, BitFlip(0.05))).apply(weights.clone(), layout, generators(chips))
    steps = (both - varied) / scales(layout)
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    assert int((steps != 0).sum()) > 100
    moved = codes(varied, layout) + steps.round().long()
    assert moved.min() >= -128 and moved.max() <= 127
    assert torch.equal(both[steps == 0], varied[steps == 0])


def test_composition_order():
    layout, chips = toy_layout(), 4
    weights = grid_weights(layout, chips)
    mult, flip_all = MultiplicativeVariation(0.05), BitFlip(1.0)
    varied = mult.apply(weights.clone(), layout, generators(chips))
    first = FaultStack((mult, flip_all)).apply(weights.clone(), layout, generators(chips))
    # mult then bit-flip: every code c of the varied weights becomes ~c = -c - 1, residual kept
    steps = (first - varied) / scales(layout)
    assert torch.allclose(steps, (-2 * codes(varied, layout) - 1).float(), atol=1e-3)
    # bit-flip then mult: the flipped codes are what the variation multiplies
    second = FaultStack((flip_all, mult)).apply(weights.clone(), layout, generators(chips))
    flipped = (-codes(weights, layout) - 1).float() * scales(layout)
    ratio = (second / flipped - 1)[flipped != 0]
    assert not torch.allclose(first, second)
    assert ratio.std().item() == pytest.approx(0.05, rel=0.1)
    assert ratio.mean().abs().item() < 0.005


@pytest.mark.parametrize("n, k", [(10, 0), (10, 3), (10, 7), (10, 10), (1000, 999), (10**9, 50)])
def test_distinct_positions(n, k):
    drawn = _distinct(n, k, torch.Generator().manual_seed(0))
    assert drawn.numel() == k == drawn.unique().numel()
    assert k == 0 or (drawn.min() >= 0 and drawn.max() < n)


@pytest.mark.parametrize("k", [3, 7])
def test_distinct_positions_are_uniform(k):
    g = torch.Generator().manual_seed(1)
    hits = torch.zeros(10)
    for _ in range(3000):
        hits[_distinct(10, k, g)] += 1
    uniform(hits)


@pytest.mark.parametrize("fault", [BitFlip(0.2), LevelFlip(0.1, bits=2), StuckAt(0.1, high=0.3)])
def test_write_batching_does_not_change_the_chips(fault, monkeypatch):
    """Chips' edits are written in batches bounded in cells (memory); any batch size gives
    the same weights, since each chip's draws and edits are its own."""
    from cimtest.faults import cell

    layout, chips = toy_layout(layers=BIG), 12
    weights = grid_weights(layout, chips)
    whole = fault.apply(weights.clone(), layout, generators(chips))
    monkeypatch.setattr(cell, "_BATCH_CELLS", 100)  # about one write per chip
    assert torch.equal(fault.apply(weights.clone(), layout, generators(chips)), whole)


def test_each_chips_flipped_bits_are_its_own_distinct_draw():
    """The vectorised draw (one sort for all chips, redraws for chips with a repeated
    position) flips exactly the bits a plain per-chip `_distinct` draw picks."""
    layout, chips, p = toy_layout(layers=(("w", 8, 8, None),)), 60, 0.1
    n = layout.numel * 8
    weights = grid_weights(layout, chips)
    after = BitFlip(p).apply(weights.clone(), layout, generators(chips))
    flipped = cell_levels(codes(weights, layout) ^ codes(after, layout), 1).reshape(chips, n)
    count, prob = torch.tensor(float(n), dtype=torch.float64), torch.tensor(p, dtype=torch.float64)
    repeats = 0
    for chip, g in enumerate(generators(chips)):
        k = int(torch.binomial(count, prob, generator=g))
        state = g.get_state()
        repeats += torch.randint(n, (k,), generator=g).unique().numel() < k
        g.set_state(state)
        expected = torch.zeros(n, dtype=torch.long)
        expected[_distinct(n, k, g)] = 1
        assert torch.equal(flipped[chip], expected), chip
    assert repeats > chips // 2  # the redraw path is exercised
