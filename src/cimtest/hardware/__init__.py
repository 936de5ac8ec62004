"""hardware/: int8 quantisation, cells and the crossbar mapping of a model (the ideal chip)."""

from cimtest.hardware.cells import BITS_PER_CELL, cells_per_weight, decode_cells, encode_cells
from cimtest.hardware.mapping import (
    MAPPED_TYPES,
    CrossbarGeometry,
    MappedLayer,
    MappedModel,
    from_crossbar,
    map_model,
    tile,
    to_crossbar,
    untile,
)
from cimtest.hardware.quant import dequantise, layer_scale, quantise

__all__ = [
    "BITS_PER_CELL",
    "MAPPED_TYPES",
    "CrossbarGeometry",
    "MappedLayer",
    "MappedModel",
    "cells_per_weight",
    "decode_cells",
    "dequantise",
    "encode_cells",
    "from_crossbar",
    "layer_scale",
    "map_model",
    "quantise",
    "tile",
    "to_crossbar",
    "untile",
]
