"""Quantisation and cell encoding against their definitions."""

import pytest
import torch

from cimtest.hardware import (
    cells_per_weight,
    decode_cells,
    dequantise,
    encode_cells,
    layer_scale,
    quantise,
)

ALL_CODES = torch.arange(-128, 128, dtype=torch.int16).to(torch.int8)


@pytest.mark.parametrize("spread", [1e-3, 1.0, 250.0])
def test_quantise_error_at_most_half_a_step(spread):
    w = torch.randn(4096, generator=torch.Generator().manual_seed(1)) * spread
    codes, scale = quantise(w)
    assert codes.dtype == torch.int8
    assert scale == pytest.approx(w.abs().max().item() / 127)
    assert (dequantise(codes, scale) - w).abs().max() <= scale / 2 + 1e-6 * spread
    assert codes.abs().max() == 127


def test_all_zero_layer_has_unit_scale_and_zero_codes():
    codes, scale = quantise(torch.zeros(5))
    assert scale == 1.0 and torch.equal(codes, torch.zeros(5, dtype=torch.int8))
    assert layer_scale(torch.zeros(0)) == 1.0


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_encode_decode_every_int8_value(bits):
    levels = encode_cells(ALL_CODES, bits)
    assert levels.shape == (256, 8 // bits)
    assert int(levels.max()) == 2**bits - 1
    assert torch.equal(decode_cells(levels, bits), ALL_CODES)


def test_two_complement_cell_layout():
    # -1 = 0xFF: every cell at its top level; 1 = 0x01: only the least significant cell set
    assert encode_cells(torch.tensor([-1], dtype=torch.int8), 2).tolist() == [[3, 3, 3, 3]]
    assert encode_cells(torch.tensor([1], dtype=torch.int8), 4).tolist() == [[1, 0]]
    assert encode_cells(torch.tensor([-128], dtype=torch.int8), 1).tolist() == [[0] * 7 + [1]]


def test_bad_bits_per_cell_is_a_config_error():
    from cimtest.exceptions import ConfigError

    with pytest.raises(ConfigError, match="bits_per_cell"):
        cells_per_weight(3)
