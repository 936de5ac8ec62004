"""Named non-idealities from the literature; a preset only sets default values.

A preset is used by name wherever a fault kind is (``egis-typical``, or
``egis-typical:sigma=0.3`` to override a parameter).
"""

from __future__ import annotations

from cimtest.faults.base import FaultStack
from cimtest.faults.variation import RRAMVariation

__all__ = ["EGIS_EXTREME", "EGIS_TYPICAL", "PRESETS"]

EGIS_TYPICAL = RRAMVariation(sigma=0.15, sys=0.25, cor=0.25, lam=0.001)
"""Typical RRAM variability of EGIS §VII-A: 25 % systematic, 25 % spatially correlated and
50 % random variance (σ_rand² = 0.5 σ_tot², after Deng & Orshansky, DATE 2022), λ = 0.001,
σ_tot = 0.15 (the paper's MobileNet value; it uses 0.3 for VGG16)."""

EGIS_EXTREME = RRAMVariation(sigma=0.15, sys=0.5, cor=0.0, lam=0.001)
"""Extreme systematic RRAM variability of EGIS §VII-A: 50 % systematic, 0 % spatially
correlated and 50 % random variance, λ = 0.001, σ_tot = 0.15."""

PRESETS: dict[str, FaultStack] = {
    "egis-typical": FaultStack((EGIS_TYPICAL,)),
    "egis-extreme": FaultStack((EGIS_EXTREME,)),
}
"""Presets by the name the spec language, the TOML files and the CLI use."""
