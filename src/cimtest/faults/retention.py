"""Retention loss: multi-level cells that fall to the level below, each at its own failure time.

Each cell of a weight's two's-complement byte (see `cimtest.faults.cell`) fails once, at a
time drawn for it: exponential with rate ``AF / tau``, where ``tau`` is the mean time to
failure at the reference temperature and ``AF`` the Arrhenius acceleration at the operating
temperature. A failed cell moves to the level below its own (``level - 1``), the
conductance state next to it on the side retention loss goes; a cell at level 0 has no
lower level and keeps it.

The failures of a chip are drawn sparsely and the same at every age: the cell that fails
``j``-th does so once the cumulative hazard ``t AF / tau`` reaches ``S_j``, the ``j``-th
smallest of ``n`` i.i.d. Exp(1) failure times, built as ``S_j = Σ_{i<j} E_i / (n - i)``
(Rényi's representation; ``E_i`` i.i.d. Exp(1)); the order in which cells fail is a uniform
random permutation, drawn as the distinct values of a stream of uniform positions. Both
streams have fixed block sizes, so the cells failed at ``t1`` are among those failed at any
``t2 > t1``, and the cost grows with the number of failed cells, not with the cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cimtest._validation import check_interval, check_option
from cimtest.exceptions import ConfigError
from cimtest.faults.base import Scope
from cimtest.faults.cell import _BATCH_CELLS, _CellFault, _Entries, _write_cells

if TYPE_CHECKING:
    import torch

    from cimtest.faults.layout import LayerSlot, WeightLayout

__all__ = ["BOLTZMANN_EV", "Retention", "arrhenius"]

BOLTZMANN_EV = 8.617333262e-5
"""Boltzmann's constant in eV/K (CODATA 2018, exact in the SI)."""
ZERO_CELSIUS = 273.15
"""0 °C in kelvin."""

_FIRST_BLOCK = 256
"""Draws in a chip's first block of failure times and of positions; each next block is
twice as large, up to `_LAST_BLOCK`. The blocks do not depend on the age, so every age
reads the same streams."""
_LAST_BLOCK = 1 << 20


def arrhenius(ea: float, temp: float, temp_ref: float) -> float:
    """Arrhenius acceleration of a failure rate at `temp` over `temp_ref` (both °C) for an
    activation energy `ea` (eV): ``exp(ea / k_B (1 / T_ref - 1 / T))``, T in kelvin; inf
    when that overflows a float."""
    inverse = 1 / (temp_ref + ZERO_CELSIUS) - 1 / (temp + ZERO_CELSIUS)
    try:
        return math.exp(ea / BOLTZMANN_EV * inverse)
    except OverflowError:
        return math.inf


@dataclass(frozen=True)
class Retention(_CellFault):
    """Retention loss: each ``bits``-bit cell falls one level at its own failure time.

    A cell's failure time is exponential with mean ``tau / AF`` (``AF`` = `arrhenius` of
    ``temp`` over ``temp_ref``), so by ``t`` seconds after programming a share
    ``1 - exp(-t AF / tau)`` of the cells has failed; a failed cell at level ``l > 0`` is at
    ``l - 1``. The same chip at two ages shares its failure times (the failed cells of the
    earlier age are among those of the later one).

    Defaults (round values to set from a technology's bake data): ``tau`` = 10 years at
    ``temp_ref`` = 85 °C, the retention target commonly specified for embedded
    non-volatile memory, read as every cell's mean time to failure; ``ea`` = 1.1 eV, within
    the range reported for filamentary oxide RRAM; operation at ``temp`` = 25 °C, where
    these give ``AF`` ≈ 1/1300 and a failure share of about 7.7e-5 after one year.
    """

    t: float
    """Seconds since programming, ≥ 0 and finite (the level: 0 is the programmed chip)."""
    tau: float = 315576000.0
    """Mean time to failure of one cell at ``temp_ref``, seconds, > 0 (default 10 years)."""
    ea: float = 1.1
    """Activation energy of the failure, eV, ≥ 0 (0: no temperature dependence)."""
    temp: float = 25.0
    """Operating temperature, °C, above absolute zero (-273.15 °C)."""
    temp_ref: float = 85.0
    """Temperature at which ``tau`` holds, °C, above absolute zero."""
    bits: int | None = None
    """Bits per cell (1, 2, 4 or 8); ``None`` takes the layout's ``bits_per_cell``."""
    scope: Scope = field(default_factory=Scope)
    """Layers the fault acts on."""
    per_read: bool = False
    """Must stay False: retention ages a chip's cells once, it is not redrawn per read."""

    kind = "retention"
    level_name = "t"
    time_name = "t"

    def _check_parameters(self) -> None:
        owner = f"fault '{self.kind}'"
        check_interval("t", self.t, 0, math.inf, owner, closed="left")
        check_interval("tau", self.tau, 0, math.inf, owner, closed="neither")
        check_interval("ea", self.ea, 0, math.inf, owner, closed="left")
        for name in ("temp", "temp_ref"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not -ZERO_CELSIUS < value < math.inf:
                raise ConfigError(f"The '{name}' parameter of {owner} is in °C and must be "
                                  f"above absolute zero (-273.15) and finite; got {value!r}.")
        check_option("bits", self.bits, (None, 1, 2, 4, 8), owner)
        if self.per_read:
            raise ConfigError(f"{owner} ages a chip once: it cannot be @per-read")

    @property
    def hazard(self) -> float:
        """Cumulative hazard of one cell at ``t``: ``t AF / tau`` (the failed share is
        ``1 - exp(-hazard)``; infinite when the acceleration overflows)."""
        if self.t == 0:
            return 0.0
        return self.t * arrhenius(self.ea, self.temp, self.temp_ref) / self.tau

    def edited_share(self, layout: WeightLayout) -> float:
        """Upper bound on the expected share of weights edited: failed share x cells."""
        return min(1.0, -math.expm1(-self.hazard) * (8 // self._cell_bits(layout)))

    def _cell_bits(self, layout: WeightLayout) -> int:
        return layout.bits_per_cell if self.bits is None else self.bits

    def _edit(
        self,
        entries: _Entries,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        import torch

        bits = self._cell_bits(layout)
        cells_per_weight = 8 // bits
        n_cells = sum(slot.numel for slot in layers) * cells_per_weight
        hazard = self.hazard
        rows: list[torch.Tensor] = []
        cells: list[torch.Tensor] = []
        pending = 0

        def flush() -> None:
            cell = torch.cat(cells)
            low = (torch.ones_like(cell) << (cell % cells_per_weight) * bits).to(torch.int32)
            _write_cells(entries, layers, cells_per_weight, torch.cat(rows), cell, (low,),
                         _step_down(bits))

        for row, generator in enumerate(generators):
            failed = _failed_cells(n_cells, hazard, generator)
            if failed.numel():
                rows.append(torch.full_like(failed, row))
                cells.append(failed)
                pending += failed.numel()
            if pending >= _BATCH_CELLS:
                flush()
                rows, cells, pending = [], [], 0
        if cells:
            flush()


def _failed_cells(n: int, hazard: float, generator: torch.Generator) -> torch.Tensor:
    """The cells (int64 indices into ``range(n)``, in the order they fail) of one chip that
    have failed once the cumulative hazard of each cell reaches `hazard`.

    Draws one pair of seeds from `generator` whatever `hazard` is (so a fault after this one
    sees the same stream at every age), then failure times and positions from generators
    seeded by them.
    """
    import torch

    device = generator.device
    seeds = torch.randint(0, 2**62, (2,), generator=generator, device=device).tolist()
    if hazard <= 0 or n == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    count = _failures(n, hazard, torch.Generator(device=device).manual_seed(seeds[0]))
    return _first_distinct(n, count, torch.Generator(device=device).manual_seed(seeds[1]))


def _failures(n: int, hazard: float, generator: torch.Generator) -> int:
    """How many of `n` i.i.d. Exp(1) failure times are at most `hazard`: the order
    statistics ``S_j`` are built block by block until one exceeds it."""
    import torch

    done, total, size = 0, 0.0, _FIRST_BLOCK
    while done < n:
        m = min(size, n - done)
        gaps = torch.empty(m, dtype=torch.float64, device=generator.device
                           ).exponential_(generator=generator)
        left = torch.arange(n - done, n - done - m, -1, dtype=torch.float64,
                            device=generator.device)
        times = gaps.div_(left).cumsum_(0).add_(total)
        if times[-1] > hazard:
            return done + int(torch.searchsorted(times, hazard, right=True))
        done, total, size = done + m, float(times[-1]), min(2 * size, _LAST_BLOCK)
    return n


def _first_distinct(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """The first `k` distinct values (int64, in order of appearance) of a stream of uniform
    draws from ``range(n)``: a uniform random ordered sample without replacement, whose
    first ``k`` values do not depend on ``k``; on the generator's device (the uniqueness
    bookkeeping runs in numpy on the host)."""
    import numpy as np
    import torch

    chosen: list[np.ndarray] = []
    seen = np.zeros(n, dtype=bool)
    have, size = 0, _FIRST_BLOCK
    while have < k:
        draws = torch.randint(0, n, (size,), generator=generator,
                              device=generator.device).cpu().numpy()
        values, first = np.unique(draws, return_index=True)
        fresh = values[np.argsort(first)]
        fresh = fresh[~seen[fresh]][: k - have]
        seen[fresh] = True
        chosen.append(fresh)
        have += fresh.size
        size = min(2 * size, _LAST_BLOCK)
    return torch.from_numpy(np.concatenate(chosen)).to(generator.device) if chosen else \
        torch.empty(0, dtype=torch.int64, device=generator.device)


def _step_down(bits: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Rewrite of `_write_cells` that lowers by one the level of every failed ``bits``-bit
    cell of a byte that is above 0; ``low`` holds the lowest bit of each failed cell."""
    top = (1 << bits) - 1

    def step(byte: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        above = sum((((byte >> shift) & top) != 0).to(byte.dtype) << shift
                    for shift in range(0, 8, bits))
        return byte - (low & above)

    return step
