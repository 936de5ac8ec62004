"""Statistics and semantics of conductance drift: W(t) = W ((t + t0) / t0)^-ν, ν per weight.

Tolerances are four standard errors of the statistic at the test's sample size (a false
failure about once in 16,000 runs per check); the standard errors are those of a mean
(σ / √N) and of a sample variance (√((m4 − s⁴) / N), from the sample's own fourth moment).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import generators, grid_weights, toy_layout
from scipy import stats

from cimtest.exceptions import ConfigError
from cimtest.faults import Drift, FaultStack, RRAMVariation, WeightLayout, parse_spec

BIG = (("w", 64, 64, None),)
"""One layer of 4096 weights."""
Z = 4.0
"""Standard errors a statistic may stray from its expectation."""


def constant_weights(layout: WeightLayout, chips: int, code: int = 100) -> torch.Tensor:
    """float32 (chips, P): every weight at `code` times its layer's scale."""
    row = torch.cat([torch.full((s.numel,), code * s.scale) for s in layout.layers])
    return row.expand(chips, -1).contiguous()


def exponents(fault: Drift, layout: WeightLayout, chips: int) -> torch.Tensor:
    """float64 (chips, P): each weight's ν, read back from log|W(t) / W(0)|."""
    before = constant_weights(layout, chips)
    after = fault.apply(before.clone(), layout, generators(chips))
    return -(after.double() / before.double()).log() / math.log1p(fault.t / fault.t0)


def check_moments(nu: torch.Tensor, law) -> None:
    """The sample mean and variance of `nu` match the frozen scipy `law` within Z errors."""
    n = nu.numel()
    mean, var = nu.mean().item(), nu.var().item()
    assert abs(mean - law.mean()) <= Z * law.std() / math.sqrt(n), (mean, law.mean())
    m4 = ((nu - mean) ** 4).mean().item()
    assert abs(var - law.var()) <= Z * math.sqrt((m4 - var**2) / n), (var, law.var())


@pytest.mark.parametrize("nu, nu_sd", [(0.06, 0.02), (0.02, 0.03), (0.05, 0.0)])
def test_log_weight_ratio_has_the_drawn_exponents_moments(nu, nu_sd):
    """mean log|W(t)/W(0)| = −E[ν] log((t + t0)/t0) and its SD is SD(ν) log((t + t0)/t0),
    with ν = |N(nu, nu_sd²)| (folded at 0; at nu = 0.02, nu_sd = 0.03 the fold moves the mean
    from 0.02 to 0.029)."""
    fault = Drift(t=86400.0, nu=nu, nu_sd=nu_sd)
    measured = exponents(fault, toy_layout(layers=BIG), 100)
    if nu_sd == 0:
        assert torch.allclose(measured, torch.full_like(measured, nu), atol=1e-6)
        return
    check_moments(measured, stats.foldnorm(nu / nu_sd, scale=nu_sd))


def test_the_first_read_sets_the_clock():
    """t0 only rescales time: drift at t with t0 equals drift at t·k with t0·k."""
    layout = toy_layout()
    weights = grid_weights(layout, 4)
    one = Drift(t=100.0, t0=20.0).apply(weights.clone(), layout, generators(4))
    other = Drift(t=1000.0, t0=200.0).apply(weights.clone(), layout, generators(4))
    assert torch.allclose(one, other, rtol=1e-6, atol=0)


def test_a_chip_ages_monotonically_and_keeps_its_exponents():
    """The same chip at increasing t: |W| never grows weight by weight, the sign is kept, a
    zero weight stays zero, and each weight's ν (read back) is the same at every t."""
    layout = toy_layout()
    weights = grid_weights(layout, 6)
    weights[:, :5] = 0.0
    times = [0.0, 1.0, 3600.0, 86400.0, 3.15e7, 3.15e8]
    aged = [Drift(t=t, nu=0.1, nu_sd=0.05).apply(weights.clone(), layout, generators(6))
            for t in times]
    for earlier, later in itertools.pairwise(aged):
        assert (later.abs() <= earlier.abs()).all()
        assert torch.equal(torch.sign(later), torch.sign(weights))
    assert torch.equal(aged[0], weights)
    nonzero = weights != 0
    reads = [-(a[nonzero].double() / weights[nonzero].double()).log() / math.log1p(t / 20.0)
             for a, t in zip(aged[2:], times[2:])]
    for read in reads[1:]:
        assert torch.allclose(read, reads[0], rtol=1e-4, atol=1e-6)


def test_drift_on_top_of_a_static_variation():
    """``egis-typical:sigma=0.05+drift``: drift shrinks the varied weights, each by its own
    factor in (0, 1], and the variation's draws come first in the chip's stream."""
    stack = parse_spec("egis-typical:sigma=0.05+drift:nu=0.05,t=86400")
    assert stack.faults[1] == Drift(t=86400.0, nu=0.05)
    layout = toy_layout()
    weights = grid_weights(layout, 4)
    varied = RRAMVariation(0.05, lam=0.001).apply(weights.clone(), layout, generators(4))
    both = stack.apply(weights.clone(), layout, generators(4))
    factor = both[varied != 0] / varied[varied != 0]
    assert (factor > 0).all() and (factor <= 1).all()
    static, aging = stack.split_aging()
    assert static.spec() == stack.faults[0].spec() and aging.faults == stack.faults[1:]


@pytest.mark.parametrize("text, message", [
    ("drift:t=-1", "'t' parameter"),
    ("drift:t=1e999", "'t' parameter"),
    ("drift:t=1,nu=-0.1", "'nu' parameter"),
    ("drift:t=1,nu_sd=-1", "'nu_sd' parameter"),
    ("drift:t=1,t0=0", "'t0' parameter"),
    ("drift:nu=0.05", "needs its level 't'"),
    ("drift:t=1@per-read", "cannot be @per-read"),
])
def test_bad_drift_specs(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_spec(text)
    assert "\n" not in str(info.value)


def test_defaults_and_round_trip():
    fault = parse_spec("drift:t=3600").faults[0]
    assert (fault.nu, fault.nu_sd, fault.t0) == (0.06, 0.02, 20.0)
    assert parse_spec(fault.spec()) == FaultStack((fault,))
    assert fault.spec() == "drift:t=3600.0,nu=0.06,nu_sd=0.02,t0=20.0"
