"""Chip weight rows drawn in parallel: blocks of chips spread over torch's threads.

Drawing the non-idealities (one normal per weight per chip for a variation) costs more
than the forward on small inputs, and `torch.Generator` draws are serial. Each chip draws
only from its own generator, so blocks of chips are filled on several threads at once
with bit-identical results, each block copied and perturbed while it sits in cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cimtest._threads import parallel_map
from cimtest.faults import FaultStack, SparseEdits, WeightLayout

__all__ = ["ROWS_PER_TASK", "SPARSE_ROWS_PER_TASK", "fill_rows", "row_buffer", "sparse_rows"]

ROWS_PER_TASK = 4
"""Most chips per block handed to a thread: a few rows stay in cache from the copy of the
base weights to the last fault (4 was the fastest of 1, 4 and 16 on ResNet-20 8x8); fewer
where the chips would not fill every thread otherwise (a few chips of a large model)."""
SPARSE_ROWS_PER_TASK = 64
"""Chips per block when every fault is sparse (`FaultStack.sparse`): such a fault touches
few weights, so the block need not stay in cache, and its per-call cost (one vectorised
write per block) is shared by more chips (ResNet-20 8x8, 4,096 chips, bit-flips at
p = 1e-5: 0.05 s of sampling instead of 0.55 s with blocks of 4)."""


def fill_rows(
    out: torch.Tensor,
    base: torch.Tensor,
    stack: FaultStack,
    layout: WeightLayout,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """Set ``out[i]`` to `base` (one row (P,), or row ``i`` of a (B, P) base) with `stack`
    applied from ``generators[i]``, for every chip ``i``; return `out`.

    Blocks of `ROWS_PER_TASK` (`SPARSE_ROWS_PER_TASK` for cell faults) chips run on torch's
    threads (`parallel_map`); the result does not depend on the thread count.
    """
    n_chips = len(generators)
    spread = -(-n_chips // torch.get_num_threads())
    step = SPARSE_ROWS_PER_TASK if stack.sparse else max(1, min(ROWS_PER_TASK, spread))

    def fill(lo: int) -> None:
        hi = min(lo + step, n_chips)
        block = out[lo:hi]
        block.copy_(base[lo:hi] if base.dim() == 2 else base.expand(hi - lo, -1))
        if stack.faults:
            stack.apply(block, layout, generators[lo:hi])

    starts = range(0, n_chips, step)
    if stack.faults:
        parallel_map(fill, starts)
    else:
        for lo in starts:
            fill(lo)
    return out


def row_buffer(scratch: torch.Tensor | None, n: int, numel: int, device: torch.device
               ) -> torch.Tensor:
    """The first `n` rows of `scratch`, or a new (n, numel) float32 buffer on `device`
    without one."""
    if scratch is None:
        return torch.empty(n, numel, device=device)
    if scratch.dtype != torch.float32 or scratch.dim() != 2 or scratch.shape[0] < n \
            or scratch.shape[1] != numel or scratch.device != device:
        raise ValueError(f"scratch must be float32 of shape (>= {n}, {numel}) on {device}; "
                         f"got {scratch.dtype} {tuple(scratch.shape)} on {scratch.device}")
    return scratch[:n]


def sparse_rows(
    reference: torch.Tensor,
    stack: FaultStack,
    layout: WeightLayout,
    generators: Sequence[torch.Generator],
) -> SparseEdits:
    """The chips' weights as `SparseEdits` of `reference` (every fault of `stack` sparse):
    the rows `fill_rows` would write, without writing them.

    All chips in one call on the calling thread: sparse draws are Python's per-chip work,
    which threads only contend for (1.4x slower on two threads than one).
    """
    edits = SparseEdits.empty(reference, len(generators))
    return stack.apply_sparse(edits, layout, generators) if generators else edits
