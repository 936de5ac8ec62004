"""Cell faults: bit-flip, level-flip and stuck-at, acting on a chip's stored int8 codes.

A weight's code is stored as its two's-complement byte split into ``8 / b`` cells of ``b``
bits; cell ``k`` holds bits ``k*b .. k*b + b - 1`` (cell 0 least significant) and its level
is the unsigned value of those bits, 0 to ``2**b - 1``.

A cell fault reads the chip's *current* code ``c = clamp(round(w / scale), -128, 127)``,
edits cells of it into ``c'`` and writes ``w' = c' * scale + (w - c * scale)``: exactly the
dequantised ``c'`` for a weight on the int8 grid, and a weight moved off the grid by an
earlier variation keeps that variation's residual.

Faulty cells are drawn sparsely: per chip, a count ``k ~ Binomial(n, p)`` over the ``n``
in-scope cells (bits for bit-flip), then ``k`` distinct cells uniformly, so the cost grows
with the number of faulty cells, not with the number of cells.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cimtest._validation import check_interval, check_option
from cimtest.faults.base import Fault, Scope

if TYPE_CHECKING:
    import torch

    from cimtest.faults.layout import LayerSlot, WeightLayout
    from cimtest.faults.sparse import SparseEdits

# torch and numpy are imported by the functions that draw and edit, so that parsing a fault
# spec (`cimtest.faults.spec`) imports neither.

__all__ = ["BitFlip", "LevelFlip", "StuckAt"]

_Edit = Callable[["torch.Tensor", "torch.Generator | None"],
                 tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]]
"""Given the index of each faulty cell within its weight (int64, (k,)) and the chip's
generator (None for an edit that draws nothing), the ``(clear, set, xor)`` bit masks
(int32, (k,)) that edit each cell's byte."""


class _Entries(Protocol):
    """Read and write access to entries ``(row, col)`` of a batch of chips' weights."""

    n_cols: int
    dtype: torch.dtype

    def read(self, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor: ...

    def write(self, row: torch.Tensor, col: torch.Tensor, values: torch.Tensor) -> None: ...


class _DenseEntries:
    """`_Entries` of a dense (b, P) weights tensor."""

    def __init__(self, weights: torch.Tensor) -> None:
        self.weights = weights
        self.n_cols = weights.shape[1]
        self.dtype = weights.dtype

    def read(self, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        return self.weights[row, col]

    def write(self, row: torch.Tensor, col: torch.Tensor, values: torch.Tensor) -> None:
        self.weights[row, col] = values


class _SparseEntries:
    """`_Entries` of some rows (`rows`, global indices) of a `SparseEdits`."""

    def __init__(self, edits: SparseEdits, rows: torch.Tensor) -> None:
        self.edits, self.rows = edits, rows
        self.n_cols = edits.n_cols
        self.dtype = edits.reference.dtype

    def read(self, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        return self.edits.read(self.rows[row], col)

    def write(self, row: torch.Tensor, col: torch.Tensor, values: torch.Tensor) -> None:
        self.edits.write(self.rows[row], col, values)


class _CellFault(Fault):
    """A fault on stored cells: it edits few entries, so it also works on `SparseEdits`."""

    sparse = True

    def apply_sparse(
        self, edits: SparseEdits, layout: WeightLayout, generators: Sequence[torch.Generator]
    ) -> SparseEdits:
        """Apply the fault to the chips of `edits` (one generator per row), in place.

        Draws exactly what `apply` draws, so the rows equal `apply` on dense rows.
        """
        import torch

        if len(generators) != edits.n_rows:
            raise ValueError(f"{edits.n_rows} chips but {len(generators)} generators")
        for chosen, rows in self.scope.groups(layout, generators).items():
            layers = tuple(layout.layers[i] for i in chosen)
            index = torch.tensor(rows, device=edits.reference.device)
            self._edit(_SparseEntries(edits, index), layers, layout,
                       [generators[row] for row in rows])
        return edits

    def edited_share(self, layout: WeightLayout) -> float:
        """Upper bound on the expected share of weights the fault edits: p x cells per weight."""
        return min(1.0, self.p * (8 // self._cell_bits(layout)))

    def _perturb(
        self,
        weights: torch.Tensor,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        self._edit(_DenseEntries(weights), layers, layout, generators)

    @abstractmethod
    def _cell_bits(self, layout: WeightLayout) -> int:
        """Bits per faulty unit: 1 for a bit-flip, else the bits of a cell."""

    @abstractmethod
    def _edit(
        self,
        entries: _Entries,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        """Draw the faulty cells of `layers` of each chip and edit `entries` (row ``i``
        draws from ``generators[i]``)."""


@dataclass(frozen=True)
class BitFlip(_CellFault):
    """Each of the 8 stored bits of a weight flips independently with probability `p`."""

    p: float
    """Flip probability of one bit, in [0, 1]."""
    scope: Scope = field(default_factory=Scope)
    """Layers the fault acts on."""
    per_read: bool = False
    """Redraw the flips at every forward pass (cycle-to-cycle) instead of once per chip."""

    kind = "bitflip"
    level_name = "p"

    def _check_parameters(self) -> None:
        check_interval("p", self.p, 0, 1, f"fault '{self.kind}'")

    def _edit(
        self,
        entries: _Entries,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        _edit_cells(entries, layers, generators, self.p, 1, _level_flip(1), draws=False)

    def _cell_bits(self, layout: WeightLayout) -> int:
        return 1


@dataclass(frozen=True)
class LevelFlip(_CellFault):
    """Each cell, with probability `p`, moves to a uniformly chosen *different* level.

    The new level is ``level XOR v`` with ``v`` uniform in ``1 .. 2**bits - 1``, which is
    uniform over the other levels. With ``bits = 1`` it is `BitFlip` (same draws too).
    """

    p: float
    """Probability that a cell changes level, in [0, 1]."""
    bits: int | None = None
    """Bits per cell (1, 2, 4 or 8); ``None`` takes the layout's ``bits_per_cell``."""
    scope: Scope = field(default_factory=Scope)
    """Layers the fault acts on."""
    per_read: bool = False
    """Redraw the faulty cells at every forward pass instead of once per chip."""

    kind = "levelflip"
    level_name = "p"

    def _check_parameters(self) -> None:
        check_interval("p", self.p, 0, 1, f"fault '{self.kind}'")
        check_option("bits", self.bits, (None, 1, 2, 4, 8), f"fault '{self.kind}'")

    def _edit(
        self,
        entries: _Entries,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        bits = self._cell_bits(layout)
        _edit_cells(entries, layers, generators, self.p, bits, _level_flip(bits),
                    draws=bits > 1)

    def _cell_bits(self, layout: WeightLayout) -> int:
        return layout.bits_per_cell if self.bits is None else self.bits


@dataclass(frozen=True)
class StuckAt(_CellFault):
    """Each cell, with probability `p`, is stuck at its highest level ``2**b - 1`` (with
    probability `high`) or at its lowest level 0; ``b`` is the layout's ``bits_per_cell``."""

    p: float
    """Probability that a cell is stuck, in [0, 1]."""
    high: float = 0.5
    """Probability that a stuck cell is stuck at its highest level (else at 0), in [0, 1]."""
    scope: Scope = field(default_factory=Scope)
    """Layers the fault acts on."""
    per_read: bool = False
    """Redraw the stuck cells at every forward pass instead of once per chip."""

    kind = "stuck"
    level_name = "p"

    def _check_parameters(self) -> None:
        check_interval("p", self.p, 0, 1, f"fault '{self.kind}'")
        check_interval("high", self.high, 0, 1, f"fault '{self.kind}'")

    def _edit(
        self,
        entries: _Entries,
        layers: tuple[LayerSlot, ...],
        layout: WeightLayout,
        generators: Sequence[torch.Generator],
    ) -> None:
        bits = self._cell_bits(layout)
        top = (1 << bits) - 1

        def stick(cell: torch.Tensor, generator: torch.Generator | None
                  ) -> tuple[torch.Tensor, ...]:
            import torch

            shift = (cell * bits).to(torch.int32)
            draws = torch.rand(cell.shape, generator=generator, device=cell.device)
            high = (draws < self.high).to(torch.int32)
            return top << shift, (high * top) << shift, torch.zeros_like(shift)

        _edit_cells(entries, layers, generators, self.p, bits, stick)

    def _cell_bits(self, layout: WeightLayout) -> int:
        return layout.bits_per_cell


def _level_flip(bits: int) -> _Edit:
    """Edit that XORs each faulty cell with a level ``v`` uniform in ``1 .. 2**bits - 1``
    (always 1 for one-bit cells, without drawing)."""

    def flip(cell: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, ...]:
        import torch

        shift = (cell * bits).to(torch.int32)
        if bits == 1:
            value = torch.ones_like(shift)
        else:
            value = torch.randint(1, 1 << bits, cell.shape, generator=generator,
                                  device=cell.device)
        zero = torch.zeros_like(shift)
        return zero, zero, value.to(torch.int32) << shift

    return flip


def _edit_cells(
    entries: _Entries,
    layers: tuple[LayerSlot, ...],
    generators: Sequence[torch.Generator],
    p: float,
    bits: int,
    edit: _Edit,
    *,
    draws: bool = True,
) -> None:
    """Draw faulty ``bits``-bit cells of `layers` per chip and apply `edit` to their codes.

    `entries` are those of b chips' weights, edited in place. Chip ``i`` draws from
    ``generators[i]``: the count of faulty cells, their positions, then whatever `edit`
    draws (nothing when not `draws`, so one call edits every chip's cells). Several faulty
    cells of one weight are combined (their masks cover disjoint bits) before the weight is
    rewritten.
    """
    import torch

    cells_per_weight = 8 // bits
    n_cells = sum(slot.numel for slot in layers) * cells_per_weight
    device = generators[0].device if generators else None
    count = torch.tensor(float(n_cells), dtype=torch.float64, device=device)
    prob = torch.tensor(float(p), dtype=torch.float64, device=device)
    drawn: list[tuple[int, int, torch.Tensor]] = []
    pending_cells = 0
    for row, generator in enumerate(generators):
        k = int(torch.binomial(count, prob, generator=generator))
        if k == 0:
            continue
        first = _distinct(n_cells, k, generator) if 2 * k > n_cells else \
            torch.randint(n_cells, (k,), generator=generator, device=device)
        drawn.append((row, k, first))
        pending_cells += k
        if pending_cells >= _BATCH_CELLS:
            _apply_drawn(entries, layers, generators, n_cells, cells_per_weight, edit, draws, drawn)
            drawn, pending_cells = [], 0
    if drawn:
        _apply_drawn(entries, layers, generators, n_cells, cells_per_weight, edit, draws, drawn)


_BATCH_CELLS = 1 << 22
"""Faulty cells drawn (over several chips) before they are written: batches many sparse
chips into one vectorised write while bounding the memory of dense ones (a VGG-16 chip at
p = 0.5 has 59 M faulty bits)."""


def _apply_drawn(
    entries: _Entries,
    layers: tuple[LayerSlot, ...],
    generators: Sequence[torch.Generator],
    n_cells: int,
    cells_per_weight: int,
    edit: _Edit,
    draws: bool,
    drawn: list[tuple[int, int, torch.Tensor]],
) -> None:
    """Finish the positions of some chips' faulty cells, draw their edits and write them.

    ``drawn`` holds ``(row, k, first)``: `first` is the chip's first ``randint`` of `k`
    positions (or its final positions when ``2k > n_cells``). The positions of all chips are
    made distinct in one sort; only a chip with a repeated position draws again, from its
    own generator, exactly as `_distinct` would, and its keys replace its repeated ones
    (in place: they stay sorted).
    """
    import numpy as np
    import torch

    from cimtest.faults.sparse import sort

    device = drawn[0][2].device
    rows = torch.from_numpy(np.array([row for row, _, _ in drawn])).to(device)
    sizes = torch.from_numpy(np.array([k for _, k, _ in drawn])).to(device)
    keys = sort(torch.cat([first for _, _, first in drawn])
                + (torch.arange(len(drawn), device=device) * n_cells).repeat_interleave(sizes))
    repeated = keys[1:] == keys[:-1]
    if repeated.any():
        short = torch.unique(keys[1:][repeated] // n_cells)
        keys = torch.unique_consecutive(keys)
        bounds = torch.searchsorted(keys, torch.stack([short, short + 1], 1) * n_cells)
        parts, done = [], 0
        for i, (lo, hi) in zip(short.tolist(), bounds.tolist(), strict=True):
            row, k, _ = drawn[i]
            cells = _complete(keys[lo:hi] - i * n_cells, n_cells, k, generators[row])
            parts += [keys[done:lo], cells + i * n_cells]
            done = hi
        keys = torch.cat([*parts, keys[done:]])
    chip, cell = keys // n_cells, keys % n_cells
    if draws:
        masks = [edit(c % cells_per_weight, generators[row]) for c, (row, _, _) in
                 zip(cell.split(sizes.tolist()), drawn)]
        clear, set_, xor = (torch.cat(m) for m in zip(*masks, strict=True))
    else:
        clear, set_, xor = edit(cell % cells_per_weight, None)
    _write_cells(entries, layers, cells_per_weight, rows[chip], cell, (clear, set_, xor))


def _clear_set_xor(byte: torch.Tensor, clear: torch.Tensor, set_: torch.Tensor,
                   xor: torch.Tensor) -> torch.Tensor:
    """The bytes with the bits of `clear` cleared, those of `set_` set, then `xor` applied."""
    return ((byte & ~clear) | set_) ^ xor


def _write_cells(
    entries: _Entries,
    layers: tuple[LayerSlot, ...],
    cells_per_weight: int,
    rows: torch.Tensor,
    cell: torch.Tensor,
    masks: tuple[torch.Tensor, ...],
    rewrite: Callable[..., torch.Tensor] = _clear_set_xor,
) -> None:
    """Apply the edits of faulty cells (`rows`, `cell`: index of the cell among the in-scope
    cells of that row) to the codes in place.

    Each weight's `masks` (int32, one per faulty cell, on disjoint bits) are combined, and
    ``rewrite(byte, *combined)`` gives its new byte (0..255); by default the masks are
    ``(clear, set, xor)`` and the byte becomes ``((byte & ~clear) | set) ^ xor``.
    """
    import torch

    from cimtest.faults.sparse import argsort

    device = cell.device
    sizes = torch.tensor([slot.numel for slot in layers], device=device)
    starts = torch.cumsum(sizes, 0) - sizes
    shift = torch.tensor([slot.offset for slot in layers], device=device) - starts
    scales = torch.tensor([slot.scale for slot in layers], dtype=entries.dtype, device=device)
    weight = cell // cells_per_weight
    layer = torch.searchsorted(starts, weight, right=True) - 1
    key = rows * entries.n_cols + weight + shift[layer]
    del rows, weight
    order = argsort(key)  # already sorted when the layers are in weight order
    key, sorted_inverse = torch.unique_consecutive(key[order], return_inverse=True)
    inverse = torch.empty_like(sorted_inverse).scatter_(0, order, sorted_inverse)
    combined = [
        torch.zeros(key.numel(), dtype=torch.int32, device=device).index_add_(0, inverse, m)
        for m in masks
    ]
    scale = torch.empty(key.numel(), dtype=entries.dtype, device=device).scatter_(
        0, inverse, scales[layer])
    row, col = key // entries.n_cols, key % entries.n_cols
    w = entries.read(row, col)
    code = torch.clamp(torch.round(w / scale), -128, 127)
    residual = w - code * scale
    byte = rewrite(code.to(torch.int32) & 0xFF, *combined)
    new = torch.where(byte > 127, byte - 256, byte).to(entries.dtype)
    entries.write(row, col, new * scale + residual)


def _distinct(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """`k` distinct indices drawn uniformly from ``range(n)`` (int64, sorted).

    Draws with replacement and redraws the duplicates from the same generator; for
    ``k > n / 2`` it draws the ``n - k`` excluded indices instead, so each redraw round keeps
    at least half its draws and the cost stays O(k) (O(n) only when k is of order n).
    """
    import torch

    if 2 * k > n:
        keep = torch.ones(n, dtype=torch.bool, device=generator.device)
        keep[_distinct(n, n - k, generator)] = False
        return keep.nonzero().squeeze(1)
    first = torch.randint(n, (k,), generator=generator, device=generator.device)
    return _complete(first.unique(), n, k, generator)


def _complete(chosen: torch.Tensor, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted distinct `chosen` topped up to `k` indices by redrawing the missing ones."""
    import torch

    while chosen.numel() < k:
        extra = torch.randint(n, (k - chosen.numel(),), generator=generator,
                              device=generator.device)
        chosen = torch.cat([chosen, extra]).unique()
    return chosen
