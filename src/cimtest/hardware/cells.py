"""Storing int8 codes in memristive cells of 1, 2, 4 or 8 bits, two's complement.

A code's two's-complement byte is split into ``8 / bits_per_cell`` cells; cell ``k`` holds
bits ``k*b .. k*b + b - 1`` (cell 0 is the least significant). A cell's *level* is the
unsigned value of its bits, 0 (lowest conductance state) to ``2**b - 1`` (highest).
"""

from __future__ import annotations

import torch

from cimtest._validation import check_option

__all__ = ["BITS_PER_CELL", "cells_per_weight", "decode_cells", "encode_cells"]

BITS_PER_CELL = (1, 2, 4, 8)


def cells_per_weight(bits_per_cell: int) -> int:
    """Number of cells one 8-bit weight occupies."""
    check_option("bits_per_cell", bits_per_cell, BITS_PER_CELL, "the cell model")
    return 8 // bits_per_cell


def encode_cells(codes: torch.Tensor, bits_per_cell: int) -> torch.Tensor:
    """Split int8 `codes` of shape (...) into cell levels, uint8 of shape (..., 8 / b)."""
    n = cells_per_weight(bits_per_cell)
    byte = codes.to(torch.int16) & 0xFF
    shifts = torch.arange(n, dtype=torch.int16) * bits_per_cell
    levels = (byte.unsqueeze(-1) >> shifts) & ((1 << bits_per_cell) - 1)
    return levels.to(torch.uint8)


def decode_cells(levels: torch.Tensor, bits_per_cell: int) -> torch.Tensor:
    """Join cell levels of shape (..., 8 / b) back into int8 codes of shape (...)."""
    n = cells_per_weight(bits_per_cell)
    if levels.shape[-1] != n:
        raise ValueError(f"expected {n} cells per weight, got {levels.shape[-1]}")
    shifts = torch.arange(n, dtype=torch.int16) * bits_per_cell
    byte = (levels.to(torch.int16) << shifts).sum(-1)
    return torch.where(byte > 127, byte - 256, byte).to(torch.int8)
