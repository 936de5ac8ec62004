"""The zoo catalogue: every entry builds, has the advertised shapes, maps only conv/linear."""

import json
import subprocess
import sys

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
    built = sum(p.numel() for p in model.parameters())  # the recorded count is this one
    assert entry.params == built > 0, f"registry._PARAMS[{entry.name!r}] should be {built:_}"
    with torch.no_grad():
        out = model(torch.randn(2, *entry.input_shape))
    assert tuple(out.shape) == (2, *entry.output_shape)
    assert torch.isfinite(out).all()
    for name, module in model.named_modules():  # mapped layers are conv/convT/linear only
        own = list(module.parameters(recurse=False))
        assert not own or isinstance(module, MAPPED + DIGITAL), (name, type(module))


def test_names_carry_the_input_size():
    names = {e.name for e in ENTRIES}
    archs = {e.arch for e in ENTRIES if e.dataset == "digits"}
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


def test_the_other_data_sets_models_carry_the_sets_name_and_shape():
    others = {e.name: e for e in ENTRIES if e.dataset != "digits"}
    assert {n: (e.dataset, e.input_shape) for n, e in others.items()} == {
        "lenet5-mnist": ("mnist", (1, 28, 28)), "resnet20-mnist": ("mnist", (1, 28, 28)),
        "cnn-mnist1d": ("mnist1d", (1, 40)), "mlp-mnist1d": ("mnist1d", (40,))}
    # the MNIST-1D paper's models: 3 Conv1d of 25 channels + a linear; 40-100-100-10
    cnn = get_entry("cnn-mnist1d").build()
    convs = [m for m in cnn.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(25, 5, 2),
                                                                                 (25, 3, 2),
                                                                                 (25, 3, 2)]
    assert get_entry("cnn-mnist1d").params == 5_210
    assert get_entry("mlp-mnist1d").params == 40 * 100 + 100 + 100 * 100 + 100 + 1_010
    assert not any(isinstance(m, DIGITAL) for e in others.values() if e.arch != "resnet20"
                   for m in e.build().modules())  # no BatchNorm in the small ones


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


def test_recorded_counts_cover_exactly_the_entries_and_test_sizes_match_the_data():
    from cimtest.cli.zoo_cmd import TEST_SIZES
    from cimtest.data.builtin import BUILTIN, default_test_size
    from cimtest.zoo.registry import _PARAMS

    assert list(_PARAMS) == [e.name for e in ENTRIES]
    assert TEST_SIZES == {name: default_test_size(name) for name in BUILTIN}


def test_zoo_list_imports_no_torch():
    """`cimtest zoo list` reads recorded counts: a fresh interpreter lists every entry with
    its parameters and never imports torch (which alone takes seconds to import)."""
    code = ("import sys; from cimtest.cli.main import app; "
            "sys.argv = ['cimtest', 'zoo', 'list', '--json']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    rows = json.loads(done.stdout)
    assert {r["name"]: r["params"] for r in rows} == {e.name: e.params for e in ENTRIES}
    assert done.stderr.strip().splitlines()[-1] == "False"
