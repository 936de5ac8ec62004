"""An input bank: the distinct inputs of many tests, so that each chip forwards each once."""

from __future__ import annotations

import torch

__all__ = ["InputBank"]


class InputBank:
    """Distinct input rows gathered from several tests, looked up by their exact bytes.

    Tests that share inputs (an ablation drawing from the EGIS synthetic set, a hybrid
    reusing its parents' inputs) add them twice but they are stored, and forwarded, once.
    Rows are keyed and kept on the CPU whatever device they come from (a population moves
    `inputs` to its own).
    """

    def __init__(self) -> None:
        self._rows: list[torch.Tensor] = []
        self._where: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, x: torch.Tensor) -> torch.Tensor:
        """Add the rows of `x` (N, *shape) not already held; return their int64 indices (N,)."""
        index = []
        for row in x.detach().float().cpu().contiguous():
            key = _key(row)
            if key not in self._where:
                self._where[key] = len(self._rows)
                self._rows.append(row.clone())
            index.append(self._where[key])
        return torch.tensor(index, dtype=torch.int64)

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Indices (N,) of the rows of `x`; KeyError names the first row that is missing."""
        index = []
        for i, row in enumerate(x.detach().float().cpu().contiguous()):
            key = _key(row)
            if key not in self._where:
                raise KeyError(f"input row {i} is not in the bank")
            index.append(self._where[key])
        return torch.tensor(index, dtype=torch.int64)

    @property
    def inputs(self) -> torch.Tensor:
        """All distinct rows, float32 (len(self), *shape), in order of first addition."""
        return torch.stack(self._rows)


def _key(row: torch.Tensor) -> bytes:
    return row.numpy().tobytes()
