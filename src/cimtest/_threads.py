"""Per-chip work spread over torch's threads, for draws that a generator makes serially.

`torch.Generator` draws run on one thread. Each chip draws only from its own generator, so
chips can be drawn on several threads at once with bit-identical results.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["parallel_map"]

T = TypeVar("T")
R = TypeVar("R")

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
_WORKER = threading.local()


def parallel_map(fn: Callable[[T], R], items: Iterable[T], *, pooled: bool = False
                 ) -> list[R]:
    """``[fn(item) for item in items]``, run on ``torch.get_num_threads()`` threads.

    Each worker runs torch ops on one thread. Runs inline with one torch thread, and inside
    a worker (a nested call must not wait on its own pool); with `pooled`, a single item
    still runs on a worker, so that every item runs its torch ops on one thread.
    """
    items = list(items)
    threads = torch.get_num_threads()
    if threads == 1 or (len(items) < 2 and not pooled) or getattr(_WORKER, "active", False):
        return [fn(item) for item in items]
    return list(_pool(threads).map(fn, items))


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
                _WORKER.active = True
                torch.get_num_threads()
                torch.set_num_threads(1)
                started.wait()

            pool = ThreadPoolExecutor(threads, thread_name_prefix="cimtest")
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
