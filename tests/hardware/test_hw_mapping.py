"""Crossbar mapping, tiling and the ideal chip."""

import pytest
import torch
from torch import nn

from cimtest import zoo
from cimtest.exceptions import ConfigError, ModelError
from cimtest.hardware import (
    MAPPED_TYPES,
    from_crossbar,
    map_model,
    tile,
    to_crossbar,
    untile,
)


def _mixed_model() -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, groups=8, padding=1),
        nn.Conv2d(8, 6, 1, groups=2),
        nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2),
        nn.Flatten(),
        nn.Linear(4 * 16 * 16, 5),
    )
    return model.eval()


def _check_round_trip(model, array_size):
    mapped = map_model(model, array_size=array_size)
    modules = dict(mapped.ideal.named_modules())
    for layer in mapped.layers:
        g = layer.geometry
        weight = modules[layer.name].weight
        matrix = to_crossbar(weight, g.kind)
        assert matrix.shape == (g.rows, g.cols)
        arrays = tile(matrix, g)
        assert arrays.shape == (g.arrays, g.array_rows, g.array_cols)
        assert torch.equal(from_crossbar(untile(arrays, g), g.kind, g.weight_shape), weight)
        assert torch.equal(arrays.reshape(-1)[g.crossbar_index()], weight.reshape(-1))


@pytest.mark.parametrize("array_size", [None, (5, 3), (64, 64)])
def test_mapping_inverse_is_identity_on_every_layer_kind(array_size):
    _check_round_trip(_mixed_model(), array_size)


@pytest.mark.parametrize("name", [e.name for e in zoo.list_models()])
def test_mapping_inverse_is_identity_for_every_zoo_architecture(name):
    _check_round_trip(zoo.get_entry(name).build(), (32, 32))


def test_geometry_of_each_layer_kind():
    mapped = map_model(_mixed_model())
    dims = [(g.kind, g.rows, g.cols) for g in (layer.geometry for layer in mapped.layers)]
    assert dims == [
        ("conv", 27, 8),
        ("conv", 9, 8),  # depthwise: compact form
        ("conv", 4, 6),  # grouped 1x1: in/groups rows
        ("convT", 6, 8),  # (out/groups)*kh*kw columns
        ("linear", 1024, 5),
    ]
    assert mapped.cells == 8 * mapped.reference.numel()  # binary cells: 8 per int8 weight
    assert map_model(_mixed_model(), bits_per_cell=2).cells == 4 * mapped.reference.numel()


def test_tiling_counts_arrays():
    mapped = map_model(nn.Sequential(nn.Linear(300, 130)), array_size=(128, 64))
    assert mapped.layers[0].geometry.arrays == 3 * 3


def test_ideal_chip_holds_dequantised_weights_and_float_model_unchanged():
    model = _mixed_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mapped = map_model(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    layers = mapped.layer_weights(mapped.reference)
    ideal_state = mapped.ideal.state_dict()
    for key, weight in layers.items():
        assert torch.equal(ideal_state[key], weight)
        assert not torch.equal(weight, before[key])  # quantised, so it moved
    assert all(isinstance(m, MAPPED_TYPES) for n, m in mapped.ideal.named_modules()
               if n in {layer.name for layer in mapped.layers})


def test_nan_weights_and_unmappable_models_are_model_errors():
    model = _mixed_model()
    with torch.no_grad():
        model[2].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ModelError, match="'2'"):
        map_model(model)
    with pytest.raises(ModelError, match="no mapped layer"):
        map_model(nn.Sequential(nn.ReLU()))
    with pytest.raises(ConfigError, match="array size"):
        map_model(_mixed_model(), array_size=(0, 4))
