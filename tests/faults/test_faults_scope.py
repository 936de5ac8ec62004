"""Scopes: all layers, a named subset, or a random fraction of layers per chip."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import generators, grid_weights, toy_layout

from cimtest.exceptions import ConfigError
from cimtest.faults import BitFlip, MultiplicativeVariation, RRAMVariation, Scope, parse_spec


def changed_layers(before: torch.Tensor, after: torch.Tensor, layout) -> torch.Tensor:
    """bool (B, L): which layers of each chip changed."""
    return torch.stack(
        [(before != after)[:, s.offset : s.stop].any(1) for s in layout.layers], dim=1
    )


@pytest.mark.parametrize(
    "kind",
    [MultiplicativeVariation, BitFlip, lambda level, scope: RRAMVariation(level, scope=scope)],
    ids=["mult", "bitflip", "rram"],
)
def test_named_layers_leave_the_others_untouched(kind):
    layout = toy_layout()
    weights = grid_weights(layout, 4)
    fault = kind(0.2, scope=Scope(layers=("layer1.0.conv2",)))
    out = fault.apply(weights.clone(), layout, generators(4))
    assert changed_layers(weights, out, layout).tolist() == [[False, True, False]] * 4


@pytest.mark.parametrize("fraction, count", [(0.5, 2), (0.1, 1), (0.9, 3), (1.0, 3)])
def test_fraction_picks_round_f_times_l_layers_per_chip(fraction, count):
    layout, chips = toy_layout(), 300
    weights = grid_weights(layout, chips)
    fault = MultiplicativeVariation(0.1, scope=Scope(fraction=fraction))
    changed = changed_layers(
        weights, fault.apply(weights.clone(), layout, generators(chips)), layout
    )
    assert torch.all(changed.sum(1) == count)
    share = changed.double().mean(0)
    if count == 3:  # every layer of every chip
        assert torch.all(share == 1)
        return
    # each layer is one of the `count` of 3 on a chip with probability count / 3, chips
    # apart: its share over 300 chips has sd sqrt(p (1 - p) / 300) = 0.027; 3.29 sd (a fair
    # draw fails 1 time in 1,000 per layer) is 0.090, and a draw that favours one layer
    # (e.g. always the first count layers: shares of 1 and 0) is far outside it
    p = count / 3
    assert torch.allclose(share, torch.full((3,), p, dtype=torch.float64),
                          atol=3.29 * math.sqrt(p * (1 - p) / chips))


def test_fraction_is_drawn_from_the_chip_generator_first():
    layout = toy_layout()
    scope = Scope(fraction=0.5)
    g = generators(1)[0]
    expected = tuple(sorted(torch.randperm(3, generator=g)[:2].tolist()))
    assert scope.select(layout, generators(1)[0]) == expected


def test_systematic_variation_is_shared_only_inside_the_scope():
    layout = toy_layout()
    weights = torch.ones(3, layout.numel)
    fault = RRAMVariation(0.3, sys=1.0, cor=0.0, scope=Scope(layers=("conv1", "fc")))
    out = fault.apply(weights.clone(), layout, generators(3))
    conv1, mid, fc = (out[:, s.offset : s.stop] for s in layout.layers)
    assert torch.equal(mid, torch.ones_like(mid))
    assert torch.allclose(conv1, conv1[:, :1].expand_as(conv1))
    assert torch.allclose(fc, conv1[:, :1].expand_as(fc))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layers": ("a",), "fraction": 0.5}, "not both"),
        ({"fraction": 0.0}, r"fraction.*\(0, 1\]"),
        ({"fraction": 1.5}, r"fraction.*\(0, 1\]"),
        ({"layers": ()}, "layer names"),
        ({"layers": ("a+b",)}, "layer names"),
        ({"layers": ("",)}, "layer names"),
    ],
)
def test_bad_scopes(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Scope(**kwargs)


def test_scope_text():
    assert Scope(layers="conv1").layers == ("conv1",)
    assert Scope().spec() == ""
    assert Scope(fraction=0.3).spec() == "@layers=0.3"
    assert Scope(fraction=1).spec() == "@layers=1.0"
    assert Scope(layers=["conv1", "fc"]).spec() == "@layers=conv1,fc"


def test_on_layer_fraction_scopes_every_fault_and_refuses_scoped_ones():
    stack = parse_spec("mult:eta=0.1+bitflip:p=1e-3")
    half = stack.on_layer_fraction(0.5)
    assert half.spec() == "mult:eta=0.1@layers=0.5+bitflip:p=0.001@layers=0.5"
    assert half.kind == "mult+bitflip" and parse_spec("none").kind == "none"
    with pytest.raises(ConfigError, match="already has a layer scope"):
        parse_spec("mult:eta=0.1@layers=conv1").on_layer_fraction(0.5)
    with pytest.raises(ConfigError, match="fraction"):
        stack.on_layer_fraction(1.5)
