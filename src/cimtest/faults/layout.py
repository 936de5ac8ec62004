"""Where each mapped layer sits in a chip's flat weight vector and on its crossbar arrays.

A `WeightLayout` is all that faults/ knows of a model: it is built by the engine from the
hardware mapping, so faults/ never imports hardware/ or ``torch.nn``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from cimtest._validation import check_option

__all__ = ["LayerSlot", "WeightLayout"]


@dataclass(frozen=True)
class LayerSlot:
    """One mapped layer inside a chip's flat weight vector.

    Equality ignores `crossbar_index` (a tensor); two slots with the same name, place, scale
    and array shape are taken to describe the same layer.
    """

    name: str
    """Mapped layer name, e.g. ``"layer1.0.conv1"``."""
    offset: int
    """Index of the layer's first weight in a chip's flat weight vector."""
    numel: int
    """Number of weights of the layer."""
    scale: float
    """int8 quantisation scale (weight units per code): ``weight = code * scale`` on the ideal
    chip."""
    max_abs: float
    """``max|W|`` of the layer's float weights (weight units); the unit of additive variation."""
    array_shape: tuple[int, int, int]
    """``(arrays, array_rows, array_cols)`` of the zero-padded stack of crossbar arrays holding
    the layer."""
    crossbar_index: torch.Tensor = field(compare=False, repr=False)
    """int64 of shape (numel,): for weight element ``j`` (torch's flat order) its flat index into
    the array stack of shape `array_shape`."""

    def __post_init__(self) -> None:
        if len(self.array_shape) != 3 or min(self.array_shape) < 1:
            raise ValueError(
                f"layer '{self.name}': array_shape must be 3 positive ints, "
                f"got {self.array_shape!r}"
            )
        if self.crossbar_index.shape != (self.numel,) or self.crossbar_index.dtype != torch.int64:
            raise ValueError(
                f"layer '{self.name}': crossbar_index must be int64 of shape ({self.numel},), "
                f"got {self.crossbar_index.dtype} {tuple(self.crossbar_index.shape)}"
            )
        if self.numel > math.prod(self.array_shape):
            raise ValueError(
                f"layer '{self.name}': {self.numel} weights do not fit in arrays "
                f"of shape {self.array_shape}"
            )

    @property
    def stop(self) -> int:
        """Index one past the layer's last weight in the flat weight vector."""
        return self.offset + self.numel


@dataclass(frozen=True)
class WeightLayout:
    """The mapped layers of a model, laid end to end in a chip's flat weight vector."""

    layers: tuple[LayerSlot, ...]
    """Mapped layers in model order; layer ``k`` starts where layer ``k - 1`` stops."""
    bits_per_cell: int
    """Bits stored per memristive cell (1, 2, 4 or 8); a weight occupies ``8 / bits_per_cell``
    cells."""

    def __post_init__(self) -> None:
        check_option("bits_per_cell", self.bits_per_cell, (1, 2, 4, 8), "WeightLayout")
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a WeightLayout needs at least one layer")
        start = 0
        for slot in self.layers:
            if slot.offset != start:
                raise ValueError(
                    f"layer '{slot.name}' starts at {slot.offset}, expected {start}: "
                    "layers must be contiguous and in order"
                )
            start = slot.stop
        if len(set(self.names)) != len(self.layers):
            raise ValueError(f"layer names must be unique, got {self.names}")

    @property
    def numel(self) -> int:
        """P, the number of mapped weights of a chip."""
        return self.layers[-1].stop

    @property
    def names(self) -> tuple[str, ...]:
        """Layer names in model order."""
        return tuple(slot.name for slot in self.layers)
