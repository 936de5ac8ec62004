"""Memory budgets: parse ``2GB``-style sizes and turn a budget into a chunk of chips.

A chunk always holds at least one micro-batch (`MICRO_BATCH`, 8 chips: a chip's outputs
must not depend on the chunk size). A budget below the estimated working set of one
micro-batch therefore cannot be met: the chunk holds one micro-batch anyway and a warning
says so. The command line refuses, before any work, a budget below the weights alone of
one micro-batch (`check_budget`), which no chunk can do without.
"""

from __future__ import annotations

import logging

from cimtest._validation import parse_memory
from cimtest.exceptions import ConfigError

__all__ = ["BYTES_PER_WEIGHT", "check_budget", "chunk_size", "format_bytes", "parse_memory"]

_logger = logging.getLogger(__name__)

BYTES_PER_WEIGHT = 12
"""Bytes a chunk holds per chip and mapped weight: three float32 weight sets (the chip's
weights, a scratch copy and the batched forward's view), as `Population.chips_per_chunk`
counts them."""

_WARNED: set[tuple[int, int]] = set()
"""(budget, bytes per chip) pairs already warned about, so a search that sizes many
chunks (e.g. calibration) warns once."""


def _micro_batch() -> int:
    from cimtest.engine.batched import MICRO_BATCH

    return MICRO_BATCH


def format_bytes(nbytes: float) -> str:
    """``2_600_000`` → ``"2.6 MB"`` (decimal units, as --memory reads them)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:.0f} B"


def _round_up(nbytes: float) -> str:
    """A --memory value of at least `nbytes`, e.g. ``"27MB"``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes >= size:
            return f"{-(-nbytes // size):.0f}{unit}"
    return f"{nbytes:.0f}B"


def check_budget(budget: int, n_weights: int) -> None:
    """Raise `ConfigError` if `budget` (bytes) cannot hold the weights of one micro-batch of
    chips of a model with `n_weights` mapped weights; the message names the smallest budget."""
    chips = _micro_batch()
    need = chips * BYTES_PER_WEIGHT * n_weights
    if budget < need:
        raise ConfigError(
            f"memory budget {format_bytes(budget)} is below what one micro-batch of {chips} "
            f"chips needs for this model's weights alone ({format_bytes(need)}); give "
            f"--memory {_round_up(need)} or more (a chunk never holds fewer chips)")


def chunk_size(budget: int, bytes_per_chip: int, n_chips: int) -> int:
    """Chips per chunk so that a chunk's working set stays under `budget` (at least 1).

    A budget below one micro-batch of `bytes_per_chip` is logged once as a warning: the
    caller rounds the chunk up to a micro-batch, which then exceeds the budget.
    """
    chips = _micro_batch()
    if budget < chips * bytes_per_chip and (budget, bytes_per_chip) not in _WARNED:
        _WARNED.add((budget, bytes_per_chip))
        _logger.warning(
            "memory budget %s is below the estimated working set of one micro-batch of %d "
            "chips (%s); chunks hold %d chips and may use more", format_bytes(budget), chips,
            format_bytes(chips * bytes_per_chip), chips)
    return max(1, min(n_chips, budget // max(bytes_per_chip, 1)))
