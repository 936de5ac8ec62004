"""Counter-based seeding: chip ``i`` of a population draws only from a generator of (seed, i)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["chip_generators", "chip_seed"]


def chip_seed(seed: int, chip: int, read: int = 0) -> int:
    """Return the 63-bit seed of chip `chip` (and per-read draw `read`) of population `seed`.

    ``read = 0`` seeds the chip's static (device-to-device) draws; ``read = r > 0`` seeds the
    per-read (cycle-to-cycle) draws of its r-th forward pass. A SeedSequence hash keeps the
    streams of neighbouring chips independent.
    """
    state = np.random.SeedSequence([seed, chip, read]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def chip_generators(seed: int, chips: Sequence[int], read: int = 0) -> list[torch.Generator]:
    """One freshly seeded CPU `torch.Generator` per chip index in `chips`."""
    return [torch.Generator().manual_seed(chip_seed(seed, int(c), read)) for c in chips]
