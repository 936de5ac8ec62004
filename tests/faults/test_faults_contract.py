"""Contract every fault keeps: shape, identity at level 0, determinism, chunk invariance."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import ALL_FAULTS, generators, grid_weights, toy_layout

from cimtest.exceptions import ConfigError
from cimtest.faults import Fault, FaultStack, Scope, parse_spec

IDS = [f.spec() for f in ALL_FAULTS]


@pytest.fixture(scope="module")
def layout():
    return toy_layout(bits_per_cell=2)


@pytest.fixture(scope="module")
def reference(layout):
    return grid_weights(layout, 5)


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=IDS)
def test_shape_dtype_and_in_place(fault: Fault, layout, reference):
    index_before = [slot.crossbar_index.clone() for slot in layout.layers]
    weights = reference.clone()
    out = fault.apply(weights, layout, generators(5))
    assert out is weights
    assert out.shape == reference.shape and out.dtype == torch.float32
    assert not torch.equal(out, reference)
    assert torch.equal(reference, grid_weights(layout, 5))
    for slot, before in zip(layout.layers, index_before):
        assert torch.equal(slot.crossbar_index, before)


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=IDS)
def test_level_zero_is_identity(fault: Fault, layout, reference):
    ideal = fault.with_level(0.0)
    assert getattr(ideal, fault.level_name) == 0.0
    out = ideal.apply(reference.clone(), layout, generators(5))
    assert torch.equal(out, reference)


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=IDS)
def test_same_generators_same_output(fault: Fault, layout, reference):
    first = fault.apply(reference.clone(), layout, generators(5, seed=3))
    second = fault.apply(reference.clone(), layout, generators(5, seed=3))
    other = fault.apply(reference.clone(), layout, generators(5, seed=4))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=IDS)
def test_chip_row_independent_of_batch(fault: Fault, layout, reference):
    batch = fault.apply(reference.clone(), layout, generators(5, seed=1))
    for chip in range(5):
        alone = fault.apply(reference[chip : chip + 1].clone(), layout, generators(1, 1, chip))
        assert torch.equal(alone[0], batch[chip])
    pair = fault.apply(reference[3:5].clone(), layout, generators(2, seed=1, first=3))
    assert torch.equal(pair, batch[3:5])


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=IDS)
def test_spec_round_trip(fault: Fault):
    stack = parse_spec(fault.spec())
    assert stack == FaultStack((fault,))
    assert parse_spec(stack.spec()) == stack


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=IDS)
def test_frozen_and_unknown_layer(fault: Fault, layout):
    with pytest.raises(dataclasses.FrozenInstanceError):
        fault.scope = Scope()
    fault.check_layout(layout)
    wrong = dataclasses.replace(fault, scope=Scope(layers=("conv1", "nope")))
    with pytest.raises(ConfigError, match="nope.*conv1, layer1.0.conv2, fc"):
        wrong.check_layout(layout)
    with pytest.raises(ConfigError, match="nope"):
        wrong.apply(grid_weights(layout, 1), layout, generators(1))


def test_bad_batch_is_rejected(layout, reference):
    fault = ALL_FAULTS[0]
    with pytest.raises(ValueError, match="generators"):
        fault.apply(reference.clone(), layout, generators(4))
    with pytest.raises(ValueError, match="shape"):
        fault.apply(reference[:, :10].clone(), layout, generators(5))
    empty = reference[:0].clone()
    assert fault.apply(empty, layout, []) is empty
