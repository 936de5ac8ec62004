"""Counter-based seeding: chip ``i`` of a population draws only from a generator of (seed, i)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cimtest._validation import check_seed

__all__ = ["chip_generators", "chip_seed", "chip_seeds"]


def chip_seed(seed: int, chip: int, read: int = 0) -> int:
    """Return the 63-bit seed of chip `chip` (and per-read draw `read`) of population `seed`.

    ``read = 0`` seeds the chip's static (device-to-device) draws; ``read = r > 0`` seeds the
    per-read (cycle-to-cycle) draws of its r-th forward pass. A SeedSequence hash keeps the
    streams of neighbouring chips independent. A negative `seed` is a `ConfigError`.
    """
    check_seed(seed, "a population seed")
    state = np.random.SeedSequence([seed, chip, read]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def chip_seeds(seed: int, chips: Sequence[int], read: int = 0) -> list[int]:
    """`chip_seed` of every chip in `chips`, computed for all chips at once.

    For values below 2**32 (one entropy word each) this runs numpy's SeedSequence hash on
    arrays, far faster than one SeedSequence per chip; other values take that slow path.
    A negative `seed` is a `ConfigError`.
    """
    check_seed(seed, "a population seed")
    chips = np.asarray(chips, dtype=np.int64).reshape(-1)
    one_word = 0 <= seed < 2**32 and 0 <= read < 2**32
    if not one_word or (chips.size and (chips.min() < 0 or chips.max() >= 2**32)):
        return [chip_seed(seed, int(c), read) for c in chips]
    state = _seed_sequence_state(
        [np.full(chips.size, seed, np.uint32), chips.astype(np.uint32),
         np.full(chips.size, read, np.uint32)])
    return ((state[0].astype(np.int64) << 31) ^ state[1].astype(np.int64)).tolist()


_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4


def _seed_sequence_state(entropy: list[np.ndarray]) -> list[np.ndarray]:
    """``SeedSequence(words).generate_state(2, uint32)`` for one entropy word per array
    element (fewer words than the pool of 4), element-wise; uint32 arithmetic wraps."""
    u32 = np.uint32
    hash_const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal hash_const
        value = value ^ u32(hash_const)
        hash_const = (hash_const * _MULT_A) & 0xFFFFFFFF
        value = value * u32(hash_const)
        return value ^ (value >> u32(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = u32(_MIX_L) * x - u32(_MIX_R) * y
        return result ^ (result >> u32(16))

    zeros = np.zeros_like(entropy[0])
    pool = [hashmix(entropy[i] if i < len(entropy) else zeros) for i in range(_POOL)]
    for source in range(_POOL):
        for target in range(_POOL):
            if source != target:
                pool[target] = mix(pool[target], hashmix(pool[source]))
    state, hash_b = [], _INIT_B
    for word in pool[:2]:
        value = word ^ u32(hash_b)
        hash_b = (hash_b * _MULT_B) & 0xFFFFFFFF
        value = value * u32(hash_b)
        state.append(value ^ (value >> u32(16)))
    return state


def chip_generators(seed: int, chips: Sequence[int], read: int = 0,
                    device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One freshly seeded `torch.Generator` on `device` per chip index in `chips`."""
    return [torch.Generator(device=device).manual_seed(s)
            for s in chip_seeds(seed, list(chips), read)]
