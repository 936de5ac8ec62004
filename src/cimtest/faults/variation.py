"""Conductance variations: multiplicative, additive, and RRAM (systematic + correlated + random).

Each chip draws all its in-scope normals in one call from its own generator, as the affine
``mean + std * z`` of a standard normal ``z``, so the same chip at two levels (η or σ) uses
the same ``z``: a chip's error grows monotonically with the level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cimtest._validation import check_interval
from cimtest.faults.base import Fault, Scope

if TYPE_CHECKING:
    import torch

    from cimtest.faults.layout import LayerSlot, WeightLayout

# torch is imported by the methods that draw (see `cimtest.faults.base`).

__all__ = ["AdditiveVariation", "MultiplicativeVariation", "RRAMVariation"]


@dataclass(frozen=True)
class MultiplicativeVariation(Fault):
    """``W' = W * (1 + ε)`` with ``ε ~ N(0, eta**2)`` i.i.d. per weight."""

    eta: float
    """Standard deviation of the relative error ε (dimensionless), ≥ 0."""
    scope: Scope = field(default_factory=Scope)
    """Layers the variation acts on."""
    per_read: bool = False
    """Redraw ε at every forward pass (cycle-to-cycle) instead of once per chip."""

    kind = "mult"
    level_name = "eta"

    def _check_parameters(self) -> None:
        check_interval("eta", self.eta, 0, math.inf, f"fault '{self.kind}'", closed="left")

    def _perturb(
        self,
        weights: torch.Tensor,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        factor = _normal_rows(generators, _size(layers), weights.dtype, self.eta, mean=1.0)
        for lo, hi, at in _spans(layers):
            weights[:, lo:hi].mul_(factor[:, at : at + hi - lo])


@dataclass(frozen=True)
class AdditiveVariation(Fault):
    """``W' = W + ε`` with ``ε ~ N(0, (eta * max|W_layer|)**2)`` i.i.d. per weight."""

    eta: float
    """Standard deviation of ε in units of the layer's ``max|W|`` (dimensionless), ≥ 0."""
    scope: Scope = field(default_factory=Scope)
    """Layers the variation acts on."""
    per_read: bool = False
    """Redraw ε at every forward pass (cycle-to-cycle) instead of once per chip."""

    kind = "add"
    level_name = "eta"

    def _check_parameters(self) -> None:
        check_interval("eta", self.eta, 0, math.inf, f"fault '{self.kind}'", closed="left")

    def _perturb(
        self,
        weights: torch.Tensor,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        noise = _normal_rows(generators, _size(layers), weights.dtype, 1.0)
        at = 0
        for slot in layers:
            part = noise[:, at : at + slot.numel].mul_(self.eta * slot.max_abs)
            weights[:, slot.offset : slot.stop].add_(part)
            at += slot.numel


@dataclass(frozen=True)
class RRAMVariation(Fault):
    """RRAM conductance variation of EGIS §III: ``W' = W * (1 + ε_sys + ε_cor + ε_rand)``.

    The three terms are independent, zero-mean Gaussians with variances ``sys * sigma**2``,
    ``cor * sigma**2`` and ``(1 - sys - cor) * sigma**2``. ``ε_sys`` is one draw per chip
    shared by every in-scope cell; ``ε_rand`` is i.i.d. per cell; ``ε_cor`` is a Gaussian
    field with correlation ``exp(-lam * d)`` between cells ``d`` cell pitches apart in the
    same crossbar array, independent between arrays (see `sample_field`).
    """

    sigma: float
    """Total standard deviation σ_tot of the relative error (dimensionless), ≥ 0."""
    sys: float = 0.25
    """Share of σ_tot² that is systematic (one value per chip), in [0, 1]."""
    cor: float = 0.25
    """Share of σ_tot² that is spatially correlated, in [0, 1]; ``sys + cor ≤ 1`` and the
    random share is ``1 - sys - cor``."""
    lam: float = field(default=0.001, metadata={"key": "lambda"})
    """Decay rate λ of the correlation ``exp(-λ d)`` per cell pitch (spec key ``lambda``), > 0.
    EGIS §VII-A uses 0.001."""
    scope: Scope = field(default_factory=Scope)
    """Layers the variation acts on."""
    per_read: bool = False
    """Redraw ε at every forward pass instead of once per chip."""

    kind = "rram"
    level_name = "sigma"

    def _check_parameters(self) -> None:
        owner = f"fault '{self.kind}'"
        check_interval("sigma", self.sigma, 0, math.inf, owner, closed="left")
        check_interval("sys", self.sys, 0, 1, owner)
        check_interval("cor", self.cor, 0, 1, owner)
        check_interval("sys + cor", self.sys + self.cor, 0, 1, owner)
        check_interval("lambda", self.lam, 0, math.inf, owner, closed="neither")

    def _perturb(
        self,
        weights: torch.Tensor,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        import torch

        from cimtest.faults.field import sample_field

        sd_sys = self.sigma * math.sqrt(self.sys)
        sd_rand = self.sigma * math.sqrt(max(0.0, 1.0 - self.sys - self.cor))
        means = [1.0 + sd_sys * float(torch.randn((), generator=g, device=g.device))
                 for g in generators]
        factor = _normal_rows(generators, _size(layers), weights.dtype, sd_rand, mean=means)
        if self.cor > 0:
            sd_cor = self.sigma * math.sqrt(self.cor)
            at = 0
            for slot in layers:
                arrays = sample_field(slot.array_shape, self.lam, generators)
                cells = arrays.reshape(len(generators), -1).index_select(
                    1, slot.crossbar_index.to(arrays.device))
                factor[:, at : at + slot.numel].add_(cells.mul_(sd_cor))
                at += slot.numel
        for lo, hi, at in _spans(layers):
            weights[:, lo:hi].mul_(factor[:, at : at + hi - lo])


def _size(layers: tuple[LayerSlot, ...]) -> int:
    """Number of weights in `layers`."""
    return sum(slot.numel for slot in layers)


def _normal_rows(
    generators: Sequence[torch.Generator],
    n: int,
    dtype: torch.dtype,
    std: float,
    *,
    mean: float | Sequence[float] = 0.0,
) -> torch.Tensor:
    """(b, n) normals: row ``i`` is ``mean + std * z`` (``mean[i]`` for a sequence), drawn in
    one call from ``generators[i]``, on the generators' device."""
    import torch

    means = [mean] * len(generators) if isinstance(mean, float) else mean
    out = torch.empty(len(generators), n, dtype=dtype, device=generators[0].device)
    for row, (generator, row_mean) in enumerate(zip(generators, means)):
        torch.normal(float(row_mean), float(std), (n,), generator=generator, out=out[row])
    return out


def _spans(layers: tuple[LayerSlot, ...]) -> list[tuple[int, int, int]]:
    """Contiguous runs of `layers` as ``(start, stop, at)``: weights ``start:stop`` of a row
    are columns ``at : at + stop - start`` of the layers' concatenated draws."""
    spans: list[tuple[int, int, int]] = []
    at = 0
    for slot in layers:
        if spans and spans[-1][1] == slot.offset:
            start, _, first = spans[-1]
            spans[-1] = (start, slot.stop, first)
        else:
            spans.append((slot.offset, slot.stop, at))
        at += slot.numel
    return spans
