"""faults/: non-idealities that turn a chip's mapped weights into its perturbed weights.

Faults work on tensors only: a batch of chips' flat weights (B, P), a `WeightLayout` saying
where each mapped layer sits, and one `torch.Generator` per chip. See docs/faults.md.
"""

from cimtest.faults.base import Fault, FaultStack, Scope
from cimtest.faults.cell import BitFlip, LevelFlip, StuckAt
from cimtest.faults.field import sample_field
from cimtest.faults.layout import LayerSlot, WeightLayout
from cimtest.faults.presets import EGIS_EXTREME, EGIS_TYPICAL, PRESETS
from cimtest.faults.sparse import SparseEdits
from cimtest.faults.spec import (
    FAULT_KINDS,
    GRAMMAR,
    dump_toml,
    load_toml,
    parse_spec,
    read_fault,
)
from cimtest.faults.variation import AdditiveVariation, MultiplicativeVariation, RRAMVariation

__all__ = [
    "EGIS_EXTREME",
    "EGIS_TYPICAL",
    "FAULT_KINDS",
    "GRAMMAR",
    "PRESETS",
    "AdditiveVariation",
    "BitFlip",
    "Fault",
    "FaultStack",
    "LayerSlot",
    "LevelFlip",
    "MultiplicativeVariation",
    "RRAMVariation",
    "Scope",
    "SparseEdits",
    "StuckAt",
    "WeightLayout",
    "dump_toml",
    "load_toml",
    "parse_spec",
    "read_fault",
    "sample_field",
]
