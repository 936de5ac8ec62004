"""Per-layer symmetric int8 post-training quantisation (docs/hardware.md, "Quantisation")."""

from __future__ import annotations

import torch

__all__ = ["QMAX", "dequantise", "layer_scale", "quantise"]

QMAX = 127
"""Largest code magnitude used by the symmetric scale; -128 stays representable for faults."""


def layer_scale(weight: torch.Tensor) -> float:
    """Return the layer's scale ``max|W| / 127`` (1.0 for an all-zero layer, so codes are 0)."""
    peak = float(weight.detach().abs().max()) if weight.numel() else 0.0
    return peak / QMAX if peak > 0 else 1.0


def quantise(weight: torch.Tensor, scale: float | None = None) -> tuple[torch.Tensor, float]:
    """Quantise `weight` to int8 codes ``clamp(round(W / scale), -128, 127)``.

    Returns the codes (int8, same shape) and the scale (float). The round-trip error of
    every weight is at most ``scale / 2`` because no weight exceeds ``127 * scale``.
    """
    scale = layer_scale(weight) if scale is None else scale
    codes = torch.clamp(torch.round(weight.detach().float() / scale), -128, 127)
    return codes.to(torch.int8), scale


def dequantise(codes: torch.Tensor, scale: float) -> torch.Tensor:
    """Return the float32 weights ``codes * scale`` that an ideal chip computes with."""
    return codes.to(torch.float32) * scale
