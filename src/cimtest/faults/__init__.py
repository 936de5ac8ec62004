"""faults/: non-idealities that turn a chip's mapped weights into its perturbed weights.

Faults work on tensors only: a batch of chips' flat weights (B, P), a `WeightLayout` saying
where each mapped layer sits, and one `torch.Generator` per chip. See docs/faults.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cimtest._lazy import lazy_names
from cimtest.faults.aihwkit import AihwkitPCM, AihwkitReRAM, AihwkitReRAMCMO, Compensation
from cimtest.faults.base import Fault, FaultStack, Scope
from cimtest.faults.cell import BitFlip, LevelFlip, StuckAt
from cimtest.faults.drift import Drift
from cimtest.faults.durations import parse_duration, parse_times
from cimtest.faults.presets import EGIS_EXTREME, EGIS_TYPICAL, PRESETS
from cimtest.faults.retention import Retention
from cimtest.faults.spec import (
    FAULT_KINDS,
    GRAMMAR,
    dump_toml,
    load_toml,
    parse_spec,
    read_fault,
)
from cimtest.faults.variation import AdditiveVariation, MultiplicativeVariation, RRAMVariation

if TYPE_CHECKING:
    from cimtest.faults.field import sample_field
    from cimtest.faults.layout import LayerSlot, WeightLayout
    from cimtest.faults.sparse import SparseEdits

_TENSOR_HOMES = {"field": ("sample_field",), "layout": ("LayerSlot", "WeightLayout"),
                 "sparse": ("SparseEdits",)}
"""The names whose modules import torch, imported on first use: the faults and the spec
language above import none, so a bad `--fault` is refused before torch loads."""

__all__ = [
    "EGIS_EXTREME",
    "EGIS_TYPICAL",
    "FAULT_KINDS",
    "GRAMMAR",
    "PRESETS",
    "AdditiveVariation",
    "AihwkitPCM",
    "AihwkitReRAM",
    "AihwkitReRAMCMO",
    "BitFlip",
    "Compensation",
    "Drift",
    "Fault",
    "FaultStack",
    "LayerSlot",
    "LevelFlip",
    "MultiplicativeVariation",
    "RRAMVariation",
    "Retention",
    "Scope",
    "SparseEdits",
    "StuckAt",
    "WeightLayout",
    "dump_toml",
    "load_toml",
    "parse_duration",
    "parse_spec",
    "parse_times",
    "read_fault",
    "sample_field",
]


__getattr__, __dir__ = lazy_names(__name__, _TENSOR_HOMES, __all__)
