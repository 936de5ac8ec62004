"""The plain per-chip reference path, used only by tests to prove the batched path equal."""

from __future__ import annotations

import copy

import torch

from cimtest.hardware import MappedModel

__all__ = ["reference_forward"]


@torch.no_grad()
def reference_forward(mapped: MappedModel, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Forward each chip's weights (rows of `flat`, (B, P)) by copying them into a model copy.

    Slow on purpose: one deep copy, one weight load and one ordinary forward per chip.
    Returns (B, N, *output_shape) like `BatchedForward`.
    """
    outputs = []
    for row in flat:
        model = copy.deepcopy(mapped.ideal)
        modules = dict(model.named_modules())
        for layer, weight in zip(mapped.layers, mapped.layer_weights(row).values()):
            modules[layer.name].weight.copy_(weight)
        outputs.append(model(x))
    return torch.stack(outputs)
