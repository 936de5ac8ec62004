"""hardware/: int8 quantisation, cells, the crossbar mapping of a model (the ideal chip) and
its periphery (DAC, ADC, output noise).

The names that need torch load on first use, so that parsing ``--hardware``
(`cimtest.hardware.periphery`) imports none and a bad value is refused at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cimtest._lazy import lazy_names

if TYPE_CHECKING:
    from cimtest.hardware.cells import (
        BITS_PER_CELL,
        cells_per_weight,
        decode_cells,
        encode_cells,
    )
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

__getattr__, __dir__ = lazy_names(__name__, {
    "cells": ("BITS_PER_CELL", "cells_per_weight", "decode_cells", "encode_cells"),
    "mapping": ("MAPPED_TYPES", "CrossbarGeometry", "MappedLayer", "MappedModel",
                "from_crossbar", "map_model", "tile", "to_crossbar", "untile"),
    "quant": ("dequantise", "layer_scale", "quantise"),
}, __all__)
