"""A population seen at several ages: `Population.at`, `forward_at` (static draws made once)
and `accuracy_at`, against one population per age."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from cimtest.engine import Population
from cimtest.exceptions import ConfigError
from cimtest.faults import parse_spec

TIMES = (0.0, 3600.0, 86400.0, 3.15e7)
X = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
Y = torch.arange(6) % 10


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10)).eval()


def aging(text: str) -> object:
    return parse_spec(text, allow_missing_time=True)


SPECS = [
    "mult:eta=0.1+drift:nu=0.2",  # a static prefix drawn once
    "rram:sigma=0.2,lambda=0.5+drift:nu=0.1+retention:tau=1e6,bits=2+add:eta=0.02",
    "drift:nu=0.3",  # nothing before the time model
    "bitflip:p=5e-5+retention:tau=1e11,temp=85",  # few cell faults: the sparse path
    "mult:eta=0.1+drift:nu=0.2+add:eta=0.05@per-read",
]


@pytest.mark.parametrize("spec", SPECS)
def test_forward_at_is_one_population_per_age(model, spec):
    """Bit for bit what `at(t).forward` gives at each age, per-read draws included."""
    population = Population(model, aging(spec), seed=4, n=10, array_size=(16, 8),
                            bits_per_cell=2)
    chips = [0, 3, 7, 9]
    together = population.forward_at(chips, X, TIMES)
    for t, out in zip(TIMES, together, strict=True):
        assert torch.equal(out, population.at(t).forward(chips, X))
    assert not torch.equal(together[0], together[-1])
    assert population.at(TIMES[-1]).sparse == spec.startswith("bitflip")


@pytest.mark.parametrize("spec", SPECS[:3])
def test_aged_rows_are_the_population_at_each_age(model, spec):
    """`AgedRows.weights` is `at(age).weights` bit for bit, for any subset, order and chips
    first requested late (each drawing its first part once)."""
    from cimtest.engine.aged import AgedRows

    population = Population(model, aging(spec), seed=4, n=10, array_size=(16, 8),
                            bits_per_cell=2)
    aged = AgedRows(population)
    for chips, t in (([0, 3, 7], TIMES[1]), ([7, 0], TIMES[3]), ([9, 3, 5], TIMES[0]),
                     ([0, 3, 7], TIMES[2]), ([5], TIMES[3])):
        assert torch.equal(aged.weights(chips, t), population.at(t).weights(chips)), (chips, t)


def test_accuracy_at_is_chunk_invariant(model):
    """The same rows whatever the chunk size, and a chip alone is that chip in the batch."""
    stack = aging("rram:sigma=0.3,lambda=0.5+drift:nu=0.3+retention:tau=1e7")
    big = Population(model, stack, seed=5, n=20, memory="1GB")
    small = Population(model, stack, seed=5, n=20, memory=1)  # one micro-batch per chunk
    everyone = big.accuracy_at(X, Y, TIMES)
    assert everyone.shape == (len(TIMES), 20) and everyone.dtype == torch.float64
    assert torch.equal(everyone, small.accuracy_at(X, Y, TIMES))
    assert torch.equal(everyone[:, 13:14], big.accuracy_at(X, Y, TIMES, chips=[13]))
    for k, t in enumerate(TIMES):
        assert torch.equal(everyone[k], big.at(t).accuracy(X, Y))


def test_a_chip_ages_along_one_path(model):
    """Chip i at a later age has every weight's |W| at most what it was (drift only)."""
    population = Population(model, aging("mult:eta=0.1+drift:nu=0.1,nu_sd=0.05"), seed=1, n=4)
    rows = [population.at(t).weights(range(4)) for t in TIMES]
    for earlier, later in itertools.pairwise(rows):
        assert (later.abs() <= earlier.abs()).all()
    assert torch.equal(rows[0], Population(model, "mult:eta=0.1", seed=1, n=4).weights(range(4)))


def test_at_needs_a_fault_that_ages(model):
    population = Population(model, "mult:eta=0.1", n=2)
    with pytest.raises(ConfigError, match="no fault with a time model"):
        population.at(3600.0)
    aged = Population(model, aging("drift"), n=2).at(60.0)
    assert aged.faults.spec() == "drift:t=60.0,nu=0.06,nu_sd=0.02,t0=20.0" and aged.n == 2


def test_the_extra_weight_set_is_budgeted(model):
    population = Population(model, aging("drift"), n=64, memory=200_000)
    assert population.chips_per_chunk((1, 8, 8), 6, extra_weight_sets=1) <= \
        population.chips_per_chunk((1, 8, 8), 6)
