"""engine/: populations of chips, batched evaluation, seeding and calibration."""

from cimtest.engine.batched import BatchedForward
from cimtest.engine.population import ChipSpec, Population, chip_scores, weight_layout
from cimtest.engine.seeding import chip_generators, chip_seed

__all__ = [
    "BatchedForward",
    "ChipSpec",
    "Population",
    "chip_generators",
    "chip_scores",
    "chip_seed",
    "weight_layout",
]
