"""Chip weight rows drawn in parallel: blocks of chips spread over torch's threads.

Drawing the non-idealities (one normal per weight per chip for a variation) costs more
than the forward on small inputs, and `torch.Generator` draws are serial. Each chip draws
only from its own generator, so blocks of chips can be filled on several threads at once
with bit-identical results. Each block is copied and perturbed while it sits in cache.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from cimtest.faults import FaultStack, WeightLayout

__all__ = ["ROWS_PER_TASK", "fill_rows"]

ROWS_PER_TASK = 4
"""Chips per block handed to a thread: a few rows stay in cache from the copy of the base
weights to the last fault (measured on ResNet-20 8x8: 4 rows beat 1 and 16 by ~15 %)."""

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def fill_rows(
    out: torch.Tensor,
    base: torch.Tensor,
    stack: FaultStack,
    layout: WeightLayout,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """Set ``out[i]`` to `base` (one row (P,), or row ``i`` of a (B, P) base) with `stack`
    applied from ``generators[i]``, for every chip ``i``; return `out`.

    Blocks of `ROWS_PER_TASK` chips run on ``torch.get_num_threads()`` threads, each with
    one torch thread; the result does not depend on the thread count.
    """
    n_chips = len(generators)

    def fill(lo: int) -> None:
        hi = min(lo + ROWS_PER_TASK, n_chips)
        block = out[lo:hi]
        block.copy_(base[lo:hi] if base.dim() == 2 else base.expand(hi - lo, -1))
        if stack.faults:
            stack.apply(block, layout, generators[lo:hi])

    starts = range(0, n_chips, ROWS_PER_TASK)
    threads = torch.get_num_threads()
    if threads == 1 or n_chips <= ROWS_PER_TASK or not stack.faults:
        for lo in starts:
            fill(lo)
    else:
        list(_pool(threads).map(fill, starts))
    return out


def _pool(threads: int) -> ThreadPoolExecutor:
    """A pool of `threads` workers that each run torch ops on one thread (created once).

    ``torch.set_num_threads(1)`` in a worker also sets the default that threads started
    later inherit, so the calling thread restores it once every worker has started. A
    worker first reads its count, which makes torch take that default before, not after.
    """
    with _LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            started = threading.Barrier(threads + 1)

            def start() -> None:
                torch.get_num_threads()
                torch.set_num_threads(1)
                started.wait()

            pool = ThreadPoolExecutor(threads, thread_name_prefix="cimtest-rows")
            for _ in range(threads):
                pool.submit(start)
            started.wait()
            torch.set_num_threads(threads)
            _POOLS[threads] = pool
        return pool


def _forget_pools() -> None:
    """A forked child has none of its parent's worker threads: start new pools there."""
    _POOLS.clear()


os.register_at_fork(after_in_child=_forget_pools)
