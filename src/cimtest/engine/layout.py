"""The faults' view of a mapped model: where each layer sits in a chip's flat weight vector."""

from __future__ import annotations

from cimtest.faults import LayerSlot, WeightLayout
from cimtest.hardware import MappedModel

__all__ = ["weight_layout"]


def weight_layout(mapped: MappedModel) -> WeightLayout:
    """The faults' view of a mapped model: where each layer sits in the flat weight vector."""
    slots = tuple(
        LayerSlot(
            name=layer.name,
            offset=offset,
            numel=layer.numel,
            scale=layer.scale,
            max_abs=layer.max_abs,
            array_shape=(
                layer.geometry.arrays,
                layer.geometry.array_rows,
                layer.geometry.array_cols,
            ),
            crossbar_index=layer.geometry.crossbar_index(),
        )
        for layer, offset in zip(mapped.layers, mapped.offsets)
    )
    return WeightLayout(layers=slots, bits_per_cell=mapped.bits_per_cell)
