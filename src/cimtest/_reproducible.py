"""The same numbers on every x86 CPU: torch's math libraries pinned before their first call.

Two things make a chip's outputs differ in their last bits, and training (a model, EGIS's
generator, a Bayesian vector) amplifies such bits into other results:

* MKL rounds a matrix product differently with the operand's alignment, the row's place in
  its blocking and the thread count (measured: LeNet-5 8x8 and a Conv1d model at one input,
  a linear layer at three threads). Strict conditional numerical reproducibility
  (``MKL_CBWR=AUTO,STRICT``) makes each product independent of all three, at no measured
  cost.
* MKL, oneDNN and ATen pick kernels by instruction set, so an AVX-512 machine and an
  AVX2-only one round differently (docs/getting-started.md gives the measured effect on
  the demo).
  Holding all three to AVX2 (``MKL_ENABLE_INSTRUCTIONS``, ``ONEDNN_MAX_CPU_ISA``,
  ``ATEN_CPU_CAPABILITY``) gives every x86-64 CPU with AVX2 the same kernels, at a cost on
  AVX-512 machines (measured in docs/results.md, Performance).

The libraries read these settings at their first call, so `pin` runs when cimtest is
imported. A setting the user made is kept; ``CIMTEST_KERNELS=native`` keeps each library's
own choice of instruction set (faster on AVX-512, other last bits).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PORTABLE", "mkl_single_threaded", "mkl_strict", "pin", "portable"]

PORTABLE = {
    "MKL_CBWR": "AUTO,STRICT",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
}
"""The settings `pin` makes on x86-64 unless the user set them (only the first off x86)."""
_STRICT = 0x10000  # MKL_CBWR_STRICT in mkl_cbwr.h
_ALL = -1  # MKL_CBWR_ALL


def portable() -> bool:
    """Whether cimtest holds the math libraries to AVX2 (x86-64, unless
    ``CIMTEST_KERNELS=native``)."""
    return (platform.machine().lower() in ("x86_64", "amd64")
            and os.environ.get("CIMTEST_KERNELS", "portable") != "native")


def pin() -> None:
    """Set the reproducibility settings the user has not set (see the module docstring)."""
    names = list(PORTABLE) if portable() else ["MKL_CBWR"]
    for name in names:
        os.environ.setdefault(name, PORTABLE[name])


@functools.cache
def _mkl(symbol: str):
    import torch

    try:
        library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        return getattr(library, symbol)
    except (OSError, AttributeError):  # a torch built without MKL, or on another OS
        return None


def mkl_strict() -> bool | None:
    """Whether MKL runs in strict reproducibility mode; None where torch has no MKL."""
    get = _mkl("mkl_serv_cbwr_get")
    return None if get is None else bool(get(_ALL) & _STRICT)


@contextlib.contextmanager
def mkl_single_threaded() -> Iterator[None]:
    """MKL on one thread in the calling thread while the block runs.

    On AMD CPUs MKL keeps its AUTO branch, where strict mode does not cover every small
    product (M = 8, N = 16 products changed their last bits from 2 threads on). One MKL
    thread per product makes each independent of the thread count; torch still spreads
    batched products and convolutions over its own threads.
    """
    local = _mkl("MKL_Set_Num_Threads_Local")
    if local is None:
        yield
        return
    previous = local(1)
    try:
        yield
    finally:
        local(previous)
