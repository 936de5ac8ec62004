"""Time as a dimension of a fault stack: ages from text, `FaultStack.at`, and the spec without
its age (``--at`` sets it)."""

from __future__ import annotations

import pytest
import torch
from conftest import generators, grid_weights, toy_layout

from cimtest.exceptions import ConfigError
from cimtest.faults import Drift, FaultStack, Retention, parse_duration, parse_spec, parse_times

DAY = 86400.0


def test_durations_in_every_unit():
    assert parse_times("1h,1d,1w,1mo,1y") == (3600.0, DAY, 7 * DAY, 365.25 * DAY / 12,
                                               365.25 * DAY)
    assert [parse_duration(t) for t in ("0", "90", "90s", "1.5min", " 2 h ", "1e3")] == [
        0.0, 90.0, 90.0, 90.0, 7200.0, 1000.0]


@pytest.mark.parametrize("text, message", [
    ("1d,1h", "times must increase; '1h' does not come after '1d'"),
    ("1h,1h", "times must increase"),
    ("-1h", "not negative"),
    ("1x", "unknown time unit 'x'"),
    ("1m", "ambiguous: write min (minutes) or mo (months)"),
    ("", "a number and a unit"),
    ("1h,,1d", "a number and a unit"),
    ("h", "a number and a unit"),
    ("1e999s", "finite"),
])
def test_bad_times_are_one_line(text, message):
    with pytest.raises(ConfigError, match="^--at: ") as info:
        parse_times(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_at_sets_the_age_of_the_faults_that_age_only():
    stack = parse_spec("mult:eta=0.05+drift:t=1+retention:t=2,bits=2")
    aged = stack.at(DAY)
    assert stack.ages and aged.faults[0] == stack.faults[0]
    assert aged.faults[1] == Drift(t=DAY) and aged.faults[2] == Retention(t=DAY, bits=2)
    assert parse_spec(aged.spec()) == aged
    static, aging = aged.split_aging()
    assert static.faults == aged.faults[:1] and aging.faults == aged.faults[1:]
    assert parse_spec("drift:t=1+mult:eta=0.1").split_aging()[0] == FaultStack(())
    with pytest.raises(ConfigError, match="no fault with a time model"):
        parse_spec("mult:eta=0.05").at(DAY)
    assert not FaultStack(()).ages and FaultStack(()).split_aging()[1] == FaultStack(())


def test_the_age_may_be_left_out_for_at_only():
    """``allow_missing_time`` sets a missing ``t`` to 0 for the faults that age and nothing
    else: a variation still needs its level."""
    stack = parse_spec("egis-typical:sigma=0.05+drift:nu=0.05+retention", allow_missing_time=True)
    assert stack.faults[1] == Drift(t=0.0, nu=0.05) and stack.faults[2] == Retention(t=0.0)
    with pytest.raises(ConfigError, match="needs its level 'eta'"):
        parse_spec("mult+drift", allow_missing_time=True)
    with pytest.raises(ConfigError, match="needs its level 't'"):
        parse_spec("drift:nu=0.05")


def test_the_same_chip_at_two_ages_shares_every_draw():
    """A fault after the time models sees the same stream at every age: with a known drift
    factor f(t) (nu_sd = 0), ``W(t) = u f(t) + a`` where ``u`` is the varied weight and
    ``a`` the additive noise drawn after drift and retention; ``a`` solved from ages
    (t1, t2) equals ``a`` solved from (t1, t3)."""
    layout = toy_layout(bits_per_cell=2)
    weights = grid_weights(layout, 3)
    stack = parse_spec("mult:eta=0.1+drift:t=0,nu=0.05,nu_sd=0+retention:t=0,tau=1e30"
                       "+add:eta=0.01")
    times = (3600.0, DAY, 365.25 * DAY)
    rows = [stack.at(t).apply(weights.clone(), layout, generators(3)).double() for t in times]
    assert torch.equal(rows[0], stack.at(times[0]).apply(
        weights.clone(), layout, generators(3)).double())
    f = [(1 + t / 20.0) ** -0.05 for t in times]

    def additive(k: int) -> torch.Tensor:
        u = (rows[0] - rows[k]) / (f[0] - f[k])
        return rows[0] - u * f[0]

    assert torch.allclose(additive(1), additive(2), atol=1e-5)
    assert additive(1).abs().max() > 1e-3  # the noise is there, and the same at every age
