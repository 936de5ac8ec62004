"""Statistics and semantics of retention loss: cells fall one level at their own failure times.

The share of failed cells at t is checked against 1 − exp(−t AF / τ) within four binomial
standard errors √(F (1 − F) / N) over the N cells of the test (a false failure about once in
16,000 runs per check); the Arrhenius factor within four standard errors of the ratio of
the two estimated hazards (delta method: each −ln(1 − F̂) has relative error
√(F / ((1 − F) N)) / −ln(1 − F)).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import generators, toy_layout
from scipy import stats

from cimtest.exceptions import ConfigError
from cimtest.faults import FaultStack, Retention, SparseEdits, WeightLayout, parse_spec
from cimtest.faults.retention import BOLTZMANN_EV, arrhenius

BIG = (("w", 64, 64, None),)
"""One layer of 4096 weights."""
Z = 4.0
"""Standard errors a statistic may stray from its expectation."""


def code_weights(layout: WeightLayout, chips: int, code: int) -> torch.Tensor:
    """float32 (chips, P): every weight at int8 `code` times its layer's scale."""
    row = torch.cat([torch.full((s.numel,), code * s.scale) for s in layout.layers])
    return row.expand(chips, -1).contiguous()


def levels(weights: torch.Tensor, layout: WeightLayout, bits: int) -> torch.Tensor:
    """int64 (B, P, 8 / bits): the level of each cell of each weight's code."""
    scale = torch.cat([torch.full((s.numel,), s.scale) for s in layout.layers])
    code = torch.clamp(torch.round(weights / scale), -128, 127).long()
    shifts = torch.arange(8 // bits) * bits
    return ((code & 0xFF).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)


def failed(fault: Retention, layout: WeightLayout, chips: int, code: int = -1
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cells that changed level, level before minus after), both (B, P, cells)."""
    weights = code_weights(layout, chips, code)
    bits = fault.bits or layout.bits_per_cell
    before = levels(weights, layout, bits)
    after = levels(fault.apply(weights.clone(), layout, generators(chips)), layout, bits)
    return before != after, before - after


def within_binomial(count: int, n: int, p: float) -> None:
    assert abs(count - n * p) <= Z * math.sqrt(n * p * (1 - p)) + 1, (count, n * p)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_failed_share_is_one_minus_exp_and_each_falls_one_level(bits):
    """Every cell of code −1 (0xFF) is at its top level; the share that changed at t is
    1 − exp(−t/τ) (AF = 1 at temp = temp_ref), each changed cell is exactly one level
    lower, and the failures are spread evenly over the cells of a weight."""
    layout, chips = toy_layout(layers=BIG), 40
    fault = Retention(t=2.0e5, tau=1.0e7, temp=85.0, bits=bits)
    assert fault.hazard == pytest.approx(0.02)
    changed, drop = failed(fault, layout, chips)
    within_binomial(int(changed.sum()), changed.numel(), -math.expm1(-0.02))
    assert (drop[changed] == 1).all() and (drop[~changed] == 0).all()
    per_cell = changed.sum((0, 1)).double().numpy()
    if per_cell.size > 1:
        assert stats.chisquare(per_cell).pvalue > 1e-3, per_cell


def test_failures_per_chip_are_binomial():
    """Each chip's count of failed cells is Binomial(n, F): its mean and variance over 400
    chips match (the variance within four of its standard errors, √(2 / 399) relative)."""
    layout, chips = toy_layout(layers=(("w", 32, 32, None),)), 400
    fault = Retention(t=5.0e5, tau=1.0e7, temp=85.0, bits=2)
    changed, _ = failed(fault, layout, chips)
    counts = changed.sum((1, 2)).double()
    n, p = changed[0].numel(), -math.expm1(-0.05)
    assert abs(counts.mean().item() - n * p) <= Z * math.sqrt(n * p * (1 - p) / chips)
    assert counts.var().item() == pytest.approx(n * p * (1 - p), rel=Z * math.sqrt(2 / 399))


def test_a_chip_keeps_its_failure_times():
    """The same chip at increasing t: the cells failed at t1 are among those failed at t2,
    and a cell failed at both is one level down at both (a cell fails once)."""
    layout = toy_layout(layers=BIG)
    runs = [failed(Retention(t=t, tau=1e7, temp=85.0, bits=2), layout, 5)
            for t in (1e4, 1e5, 1e6, 1e7)]
    for (early, _), (late, drop) in itertools.pairwise(runs):
        assert early.sum() < late.sum()
        assert (late | ~early).all()
        assert (drop[late] == 1).all()


def test_a_cell_at_level_zero_stays():
    """Code 0: every cell at level 0 has no lower level, whatever fails."""
    layout = toy_layout(layers=BIG)
    changed, _ = failed(Retention(t=1e9, tau=1e7, temp=85.0, bits=2), layout, 3, code=0)
    assert not changed.any()


def test_arrhenius_acceleration_by_the_stated_factor():
    """Hotter, more failures: the hazards at 55 °C and 25 °C (ea = 0.5 eV, τ at 25 °C)
    differ by exp(ea / k_B (1/298.15 − 1/328.15)) = 5.92."""
    factor = arrhenius(0.5, 55.0, 25.0)
    assert factor == pytest.approx(math.exp(0.5 / BOLTZMANN_EV * (1 / 298.15 - 1 / 328.15)))
    assert factor == pytest.approx(5.9248, rel=1e-4)
    assert arrhenius(0.5, 25.0, 25.0) == 1.0 and arrhenius(0.0, 125.0, 25.0) == 1.0
    layout, chips = toy_layout(layers=BIG), 40
    cold = Retention(t=1e5, tau=1e7, ea=0.5, temp=25.0, temp_ref=25.0, bits=2)
    hot = Retention(t=1e5, tau=1e7, ea=0.5, temp=55.0, temp_ref=25.0, bits=2)
    assert hot.hazard == pytest.approx(factor * cold.hazard)
    hazards, errors = [], []
    for fault in (cold, hot):
        changed, _ = failed(fault, layout, chips)
        share = changed.double().mean().item()
        within_binomial(int(changed.sum()), changed.numel(), -math.expm1(-fault.hazard))
        hazards.append(-math.log1p(-share))
        errors.append(math.sqrt(share / ((1 - share) * changed.numel())) / hazards[-1])
    ratio = hazards[1] / hazards[0]
    assert abs(ratio / factor - 1) <= Z * math.hypot(*errors), (ratio, factor)


def test_the_sparse_path_draws_the_same_cells():
    """`apply_sparse` (the engine's sparse path) edits exactly the entries `apply` does."""
    layout = toy_layout(bits_per_cell=2)
    reference = code_weights(layout, 1, -1)[0]
    stack = FaultStack((Retention(t=3e5, tau=1e7, temp=85.0),))
    dense = stack.apply(reference.expand(6, -1).clone(), layout, generators(6))
    edits = stack.apply_sparse(SparseEdits.empty(reference, 6), layout, generators(6))
    assert torch.equal(edits.dense(), dense)
    assert stack.faults[0].edited_share(layout) == pytest.approx(4 * -math.expm1(-0.03))


def test_defaults_and_round_trip():
    fault = parse_spec("retention:t=31557600").faults[0]
    assert (fault.tau, fault.ea, fault.temp, fault.temp_ref, fault.bits) == (
        315576000.0, 1.1, 25.0, 85.0, None)
    assert -math.expm1(-fault.hazard) == pytest.approx(7.67e-5, rel=1e-3)  # one year at 25 °C
    assert parse_spec(fault.spec()) == FaultStack((fault,))
    assert fault.with_level(0.0).hazard == 0.0


@pytest.mark.parametrize("text, message", [
    ("retention:t=1,temp=-300", "above absolute zero"),
    ("retention:t=1,temp_ref=-273.15", "above absolute zero"),
    ("retention:t=1,temp=1e999", "above absolute zero"),
    ("retention:t=1,ea=-1", "'ea' parameter"),
    ("retention:t=1,tau=0", "'tau' parameter"),
    ("retention:t=-5", "'t' parameter"),
    ("retention:t=1,bits=3", "'bits' parameter"),
    ("retention:tau=1e7", "needs its level 't'"),
    ("retention:t=1@per-read", "cannot be @per-read"),
])
def test_bad_retention_specs(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_spec(text)
    assert "\n" not in str(info.value)


def test_an_overflowing_acceleration_fails_every_cell():
    fault = Retention(t=1.0, ea=100.0, temp=1000.0)
    assert fault.hazard == math.inf and fault.edited_share(toy_layout()) == 1.0
    changed, _ = failed(fault, toy_layout(layers=(("w", 8, 8, None),)), 2)
    assert changed.all()
