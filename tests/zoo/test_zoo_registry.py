"""The zoo catalogue: every entry builds, has the advertised shapes, maps only conv/linear."""

import pytest
import torch
from torch import nn

from cimtest.exceptions import ModelError
from cimtest.fingerprint import state_fingerprint
from cimtest.zoo import get_entry, list_models

MAPPED = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
DIGITAL = (nn.BatchNorm1d, nn.BatchNorm2d)
ENTRIES = list_models()


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_entry_builds_with_its_shapes_and_maps_only_conv_and_linear(entry):
    model = entry.build()
    assert not model.training
    assert entry.params == sum(p.numel() for p in model.parameters()) > 0
    with torch.no_grad():
        out = model(torch.randn(2, *entry.input_shape))
    assert tuple(out.shape) == (2, *entry.output_shape)
    assert torch.isfinite(out).all()
    for name, module in model.named_modules():  # mapped layers are conv/convT/linear only
        own = list(module.parameters(recurse=False))
        assert not own or isinstance(module, MAPPED + DIGITAL), (name, type(module))


def test_names_carry_the_input_size():
    names = {e.name for e in ENTRIES}
    archs = {e.arch for e in ENTRIES}
    assert {"resnet20", "resnet56", "vgg16", "mobilenet-v1", "mobilenet-v2", "repvgg-a0",
            "unet", "fcn", "dcgan-g", "dcgan-d", "lenet5", "mlp"} == archs
    for arch in archs:
        assert {arch, f"{arch}-16", f"{arch}-8"} <= names
    assert get_entry("resnet20").input_shape == (3, 32, 32)
    assert get_entry("resnet20-16").input_shape == (3, 16, 16)
    assert get_entry("resnet20-8").input_shape == (1, 8, 8)
    assert get_entry("unet-8").output_shape == (11, 8, 8)
    assert get_entry("dcgan-g").input_shape == (100,)
    assert get_entry("dcgan-g-8").output_shape == (1, 8, 8)
    assert get_entry("dcgan-d-16").output_shape == (1,)
    assert {e.task for e in ENTRIES} == {
        "classification", "segmentation", "generation", "discrimination"
    }


def test_resnet20_has_the_standard_parameter_count():
    assert 0.26e6 < get_entry("resnet20").params < 0.28e6
    assert 0.84e6 < get_entry("resnet56").params < 0.87e6


@pytest.mark.parametrize("name", ["lenet5-8", "repvgg-a0-8"])
def test_build_is_deterministic_and_leaves_global_rng_alone(name):
    entry = get_entry(name)
    state = torch.random.get_rng_state()
    first, second = entry.build(), entry.build()
    assert torch.equal(state, torch.random.get_rng_state())
    assert state_fingerprint(first) == state_fingerprint(second)
    assert state_fingerprint(entry.build(seed=1)) != state_fingerprint(first)


def test_unknown_name_is_a_model_error():
    with pytest.raises(ModelError, match="unknown zoo model 'resnet21' \\(did you mean resnet20"):
        get_entry("resnet21")
