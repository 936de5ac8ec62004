"""Chips' weights as the ideal row plus a few edited entries, for faults that touch few cells.

At bit-flip rates of interest (1e-5 to 1e-3) a chip differs from the ideal chip in a few
hundred of its weights. `SparseEdits` holds only those, so the engine can skip copying a
full weight row per chip and forward the ideal layers plus sparse corrections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SparseEdits", "argsort", "sort"]


@dataclass
class SparseEdits:
    """Rows ``0 .. n_rows - 1``, each equal to `reference` except at its edited entries.

    Entry ``(row, col)`` is stored under the flat key ``row * P + col``; `keys` are sorted
    and unique. Edits are merged in place by `write`; the latest write of an entry wins.
    """

    reference: torch.Tensor
    """The ideal chip's flat weights, float32 (P,)."""
    n_rows: int
    """Number of chips."""
    keys: torch.Tensor
    """int64 (E,), sorted and unique."""
    values: torch.Tensor
    """float32 (E,): the edited weights."""

    @classmethod
    def empty(cls, reference: torch.Tensor, n_rows: int) -> SparseEdits:
        """`n_rows` chips equal to `reference`."""
        return cls(reference, n_rows, torch.empty(0, dtype=torch.int64),
                   torch.empty(0, dtype=reference.dtype))

    @property
    def n_cols(self) -> int:
        """P, the number of weights of a chip."""
        return self.reference.numel()

    def read(self, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        """The current weights at entries ``(row[i], col[i])``."""
        values = self.reference[col]
        if self.keys.numel():
            key = row * self.n_cols + col
            at = torch.searchsorted(self.keys, key).clamp_(max=self.keys.numel() - 1)
            values = torch.where(self.keys[at] == key, self.values[at], values)
        return values

    def write(self, row: torch.Tensor, col: torch.Tensor, values: torch.Tensor) -> None:
        """Set the weights at entries ``(row[i], col[i])`` (distinct entries) to `values`."""
        if not row.numel():
            return
        key, values = row * self.n_cols + col, values.to(self.values.dtype)
        order = argsort(key)
        key, values = key[order], values[order]
        if self.keys.numel():
            at = torch.searchsorted(key, self.keys).clamp_(max=key.numel() - 1)
            kept = key[at] != self.keys  # entries not written now (faster than isin here)
            key, values = torch.cat([self.keys[kept], key]), torch.cat([self.values[kept], values])
            order = argsort(key)
            key, values = key[order], values[order]
        self.keys, self.values = key, values

    def entries(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(row, col, delta)`` of every edit, ``delta = value - reference[col]``, in key
        order (by row, then col); entries whose value equals the reference are dropped."""
        row, col = self.keys // self.n_cols, self.keys % self.n_cols
        delta = self.values - self.reference[col]
        changed = delta != 0
        return row[changed], col[changed], delta[changed]

    def dense(self) -> torch.Tensor:
        """The rows as a dense float32 (n_rows, P) tensor (for tests and small runs)."""
        out = self.reference.expand(self.n_rows, -1).clone()
        out.view(-1)[self.keys] = self.values
        return out


def argsort(keys: torch.Tensor) -> torch.Tensor:
    """Indices that sort the int64 `keys` (ties in any order), by numpy: on one core 1.5x
    faster than `torch.sort` on random keys and O(n) on sorted ones, the common case here;
    on another device, `torch.sort` there."""
    if keys.device.type != "cpu":
        return torch.sort(keys).indices
    return torch.from_numpy(np.argsort(keys.numpy()))


def sort(keys: torch.Tensor) -> torch.Tensor:
    """The int64 `keys` sorted, by numpy (faster than `torch.sort` on one core); on another
    device, by `torch.sort` there."""
    if keys.device.type != "cpu":
        return torch.sort(keys).values
    return torch.from_numpy(np.sort(keys.numpy()))
