"""MKL's strict reproducibility mode, pinned before torch runs its first matrix product.

MKL's matrix kernels round a product differently with the operand's alignment, its row's
place in the blocking and the thread count, so a chip could give other last bits alone than
in a chunk (measured: LeNet-5 8x8 and a Conv1d model at one input, a linear layer at three
threads). Strict conditional numerical reproducibility (``MKL_CBWR=AUTO,STRICT``) makes
each product independent of all three, at no measured cost. MKL reads the setting once, at
its first call, so `pin` must run before any torch matmul: ``import cimtest`` does it.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

__all__ = ["MKL_SETTING", "mkl_strict", "pin"]

MKL_SETTING = "AUTO,STRICT"
_STRICT = 0x10000  # MKL_CBWR_STRICT in mkl_cbwr.h
_ALL = -1  # MKL_CBWR_ALL


def pin() -> None:
    """Ask MKL for strict reproducibility, unless the user already chose a mode."""
    os.environ.setdefault("MKL_CBWR", MKL_SETTING)


@functools.cache
def _mkl_get():
    import torch

    try:
        library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        return library.mkl_serv_cbwr_get
    except (OSError, AttributeError):  # a torch built without MKL, or on another OS
        return None


def mkl_strict() -> bool | None:
    """Whether MKL runs in strict reproducibility mode; None where torch has no MKL."""
    get = _mkl_get()
    return None if get is None else bool(get(_ALL) & _STRICT)
