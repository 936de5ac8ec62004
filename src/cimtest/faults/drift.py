"""Conductance drift: each weight's conductance decays as a power of the time since programming.

A weight is stored, as in aihwkit's single-pair converter (``g_min = 0``), in a pair of
analog devices: ``W ∝ G+ − G−``, the positive part of ``W`` in ``G+`` and the negative part
in ``G−``, the other device at 0. Drift ``G(t) = G(t0) ((t + t0) / t0)^-ν`` scales the
device that holds the weight (the one at 0 stays at 0), so ``|W|`` shrinks toward 0 and the
sign is kept. The bits per cell of the layout do not enter: drift models analog storage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cimtest._validation import check_interval
from cimtest.exceptions import ConfigError
from cimtest.faults.base import Fault, Scope
from cimtest.faults.variation import _normal_rows, _size, _spans

if TYPE_CHECKING:
    import torch

    from cimtest.faults.layout import LayerSlot, WeightLayout

__all__ = ["Drift"]


@dataclass(frozen=True)
class Drift(Fault):
    """Conductance drift: ``W(t) = W ((t + t0) / t0)^-ν``, ν drawn once per weight.

    ``ν = |nu + nu_sd z|`` with ``z ~ N(0, 1)`` drawn once per weight (per programmed
    device) from the chip's generator, folded at 0 as aihwkit folds it, so that ``|W|`` never
    grows. ``t`` counts seconds from the end of programming and ``t0`` is the first read
    (aihwkit's ``PCMLikeNoiseModel`` convention): ``t = 0`` is the programmed chip. The
    same chip at two times shares every ``z``, so its trajectory is one chip aging: ``|W|``
    is non-increasing in ``t`` weight by weight.

    Defaults: aihwkit's ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019) draws
    ``ν ~ |N(μ(G), σ(G)²)|`` with ``μ = clip(0.0244 − 0.0155 ln(G / g_max), 0.049, 0.1)``
    and ``σ = clip(−0.0059 − 0.0125 ln(G / g_max), 0.008, 0.045)``, and ``t_0 = 20`` s: at
    ``G = 0.1 g_max`` that is ``ν ~ |N(0.060, 0.023²)|``, and over resnet20-8's mapped
    weights (each layer's ``max|W|`` at ``g_max``) μ averages 0.059 and σ 0.020. Here ν does
    not depend on ``G`` (``aihwkit-pcm`` runs aihwkit's own model).
    """

    t: float
    """Seconds since programming, ≥ 0 and finite (the level: 0 is the programmed chip)."""
    nu: float = 0.06
    """Mean drift exponent ν̄ (dimensionless), ≥ 0."""
    nu_sd: float = 0.02
    """Standard deviation of ν between weights (dimensionless), ≥ 0."""
    t0: float = 20.0
    """Seconds from the end of programming to the first read, the time drift is counted
    from, > 0 (aihwkit's ``t_0``)."""
    scope: Scope = field(default_factory=Scope)
    """Layers the drift acts on."""
    per_read: bool = False
    """Must stay False: drift ages a chip's devices once, it is not redrawn per read."""

    kind = "drift"
    level_name = "t"
    time_name = "t"

    def _check_parameters(self) -> None:
        owner = f"fault '{self.kind}'"
        check_interval("t", self.t, 0, math.inf, owner, closed="left")
        check_interval("nu", self.nu, 0, math.inf, owner, closed="left")
        check_interval("nu_sd", self.nu_sd, 0, math.inf, owner, closed="left")
        check_interval("t0", self.t0, 0, math.inf, owner, closed="neither")
        if self.per_read:
            raise ConfigError(f"{owner} ages a chip once: it cannot be @per-read")

    def _perturb(
        self,
        weights: torch.Tensor,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        nu = _normal_rows(generators, _size(layers), weights.dtype, self.nu_sd,
                          mean=float(self.nu))
        factor = nu.abs_().mul_(-math.log1p(self.t / self.t0)).exp_()
        for lo, hi, at in _spans(layers):
            weights[:, lo:hi].mul_(factor[:, at : at + hi - lo])
