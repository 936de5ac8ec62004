"""The periphery (DAC, ADC, output noise): parsing, exact values, aihwkit's forward, seeding."""

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from cimtest.engine import Population
from cimtest.exceptions import ConfigError
from cimtest.hardware.periphery import PRESETS, Periphery, parse_periphery


def _linear(inputs: int = 16, outputs: int = 6) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(inputs, outputs)).eval()


def test_parse_presets_keys_and_refusals():
    assert parse_periphery(None).ideal and parse_periphery("ideal") == Periphery()
    assert parse_periphery("aihwkit") == Periphery(7, 9, 12.0, 0.06)
    assert parse_periphery("aihwkit,out_noise=0") == Periphery(7, 9, 12.0, 0.0)
    assert parse_periphery("dac_bits=4").spec() == "dac_bits=4"
    assert parse_periphery(PRESETS["aihwkit"].spec()) == PRESETS["aihwkit"]
    for text, words in [("fast", "unknown hardware preset"), ("dac=4", "unknown hardware key"),
                        ("dac_bits=1", "at least 2"), ("dac_bits=0", "at least 2"),
                        ("adc_bits=8", "adc_bound"), ("out_noise=-1", "out_noise"),
                        ("dac_bits=x", "takes a number")]:
        with pytest.raises(ConfigError, match=words):
            parse_periphery(text)


def test_ideal_periphery_changes_nothing():
    model, x = _linear(), torch.randn(9, 16)
    plain = Population(model, "mult:eta=0.1", seed=3, n=8).outputs(x)
    assert torch.equal(plain, Population(model, "mult:eta=0.1", seed=3, n=8,
                                         periphery="ideal").outputs(x))


def test_two_bit_dac_and_a_coarse_adc_by_hand():
    """A 2-bit DAC has the levels -α, 0, α (step 2 / (2^2 - 2) = 1 of the scaled input); a
    2-bit ADC over ±0.5 has steps of 1 / 2 = 0.5 and clips at ±0.5, before scaling back by
    α ω (ω = max|W| = 1)."""
    model = _linear(2, 1)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -0.5]]))
        model[0].bias.zero_()
    x = torch.tensor([[2.0, 0.9], [-1.0, 0.4]])  # α = 2 and 1
    dac = Population(model, "none", periphery="dac_bits=2").outputs(x)[0, :, 0]
    # scaled inputs (1, 0.45) → (1, 0) and (-1, 0.4) → (-1, 0): W x' = α (1, -1)
    torch.testing.assert_close(dac, torch.tensor([2.0, -1.0]))
    adc = Population(model, "none", periphery="adc_bits=2,adc_bound=0.5").outputs(x)[0, :, 0]
    # W x / (α ω) = (0.775, -1.2) rounds to (1, -1) in steps of 0.5, then clips to ±0.5
    torch.testing.assert_close(adc, torch.tensor([0.5 * 2.0, -0.5 * 1.0]))


def test_deterministic_part_equals_aihwkits_forward():
    mvm = pytest.importorskip("aihwkit.simulator.tiles.analog_mvm")
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
    from aihwkit.simulator.parameters.io import IOParameters

    model = _linear()
    x = 3.0 * torch.randn(64, 16)
    population = Population(model, "none", periphery="aihwkit,out_noise=0")
    layer = population.mapped.ideal[0]
    weight, bias = layer.weight.detach(), layer.bias.detach()
    omega = weight.abs().max()
    io = IOParameters(out_noise=0.0, bound_management=BoundManagementType.NONE,
                      noise_management=NoiseManagementType.ABS_MAX)
    theirs = mvm.AnalogMVM.matmul(weight / omega, x.clone(), io, is_test=True) * omega + bias
    ours = population.outputs(x)[0]
    assert (ours - (x @ weight.T + bias)).abs().max() > 1e-2  # the converters act
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)  # float32 rounding only


def test_output_noise_has_aihwkits_distribution():
    """Residuals (noisy − noise-free output) of 500 chips against 500 repeats of aihwkit's
    forward, pooled over the 6 outputs of one input: a two-sample KS test at α = 0.001 (a
    correct implementation fails it once in 1,000 runs; a noise of the wrong scale by 10 %
    fails it at these 3,000 samples a side)."""
    mvm = pytest.importorskip("aihwkit.simulator.tiles.analog_mvm")
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType
    from aihwkit.simulator.parameters.io import IOParameters

    model, x = _linear(), 2.0 * torch.randn(1, 16)
    noisy = Population(model, "none", seed=4, n=500, periphery="out_noise=0.06")
    clean = Population(model, "none", periphery="ideal").outputs(x)[0]
    ours = (noisy.outputs(x)[:, 0] - clean).flatten().numpy()
    layer = noisy.mapped.ideal[0]
    weight, bias = layer.weight.detach(), layer.bias.detach()
    omega = weight.abs().max()
    io = IOParameters(out_noise=0.06, inp_res=-1, out_res=-1, out_bound=-1,
                      bound_management=BoundManagementType.NONE,
                      noise_management=NoiseManagementType.ABS_MAX)
    torch.manual_seed(0)
    theirs = torch.cat([mvm.AnalogMVM.matmul(weight / omega, x.clone(), io, is_test=True)
                        * omega + bias - clean for _ in range(500)]).flatten().numpy()
    assert stats.ks_2samp(ours, theirs).pvalue > 0.001
    expected = 0.06 * float(x.abs().max() * omega)  # out_noise in units of α ω
    assert np.std(ours) == pytest.approx(expected, rel=0.1)  # sd of an sd at n=3000: 1.3 %


def test_noise_is_the_chips_own():
    model, x = _linear(), torch.randn(10, 16)
    population = Population(model, "none", seed=2, n=20, periphery="aihwkit")
    together = population.outputs(x)
    alone = torch.cat([population.outputs(x, chips=[c]) for c in (3, 17)])
    assert torch.equal(alone, together[[3, 17]])
    assert not torch.equal(together[0], together[1])  # each chip reads its own noise
    again = Population(model, "none", seed=2, n=20, periphery="aihwkit").outputs(x)
    assert torch.equal(again, together)


def test_periphery_beside_sparse_faults_and_in_the_recipe():
    model, x = _linear(), torch.randn(10, 16)
    population = Population(model, "bitflip:p=0.001", seed=1, n=8, periphery="dac_bits=6")
    assert not population.sparse  # the delta path is linear in the weights; the DAC is not
    assert population.outputs(x).shape == (8, 10, 6)
    assert population.recipe()["hardware"] == "dac_bits=6"
    assert "hardware" not in Population(model, "none").recipe()
