"""What a documented experiment is: its document, its commands and how its tables are made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Experiment", "Results", "Step", "calibrated_level"]

Results = dict[str, object]
"""Parsed JSON of the steps run so far, by step name."""

Step = tuple[str, Callable[[Results, Path], list]]
"""A step's name and its command line, made from the results of the steps before it."""


@dataclass(frozen=True)
class Experiment:
    """A documented experiment: its document, its commands and how its tables are made."""

    doc: str
    steps: tuple[Step, ...]
    render: Callable[[Results], dict[str, str]]
    """Results → markdown by block name."""
    blocks: tuple[str, ...] = ()
    """The names of the blocks `render` writes (each must be marked in `doc`)."""
    figures: tuple[tuple[str, str], ...] = ()
    """Files the steps write, copied to the docs folder: (path in the work folder, path in
    the docs folder)."""


def calibrated_level(results: Results, step: str, drop: float | None = None) -> float:
    """The calibrated level of `step` for `drop` (the first one if None)."""
    rows = results[step]
    row = rows[0] if drop is None else next(r for r in rows if r["drop"] == drop)
    return float(row["level"])
