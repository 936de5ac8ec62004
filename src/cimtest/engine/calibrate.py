"""Calibration: the level of a fault kind whose mean accuracy drop meets a target, by bisection.

The levels found for drops of e.g. 0.5, 1, 2, 5 and 10 points are what the rest of cimtest
calls eta_0^1..5 (variations) and P_flip^1..5 (faults).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from cimtest.engine.population import Population
from cimtest.exceptions import ConfigError
from cimtest.faults import FaultStack
from cimtest.tasks import ScoredTask

__all__ = ["DEFAULT_BRACKETS", "Calibration", "calibrate"]

_logger = logging.getLogger(__name__)

DEFAULT_BRACKETS = {"p": (1e-8, 0.5), "eta": (1e-4, 3.0), "sigma": (1e-4, 3.0), "t": (1.0, 1e9)}
"""Search range of each kind of level: rates, relative noise scales, and seconds after
programming (1 s to about 32 years) for the kinds whose level is an age (the aihwkit kinds,
drift and retention)."""


@dataclass(frozen=True)
class Calibration:
    """One calibrated level and the Monte Carlo estimate behind it."""

    drop: float
    """Target mean accuracy drop, in points, from the ideal chip's accuracy."""
    level: float
    """Level (p, eta or sigma) found for the target."""
    measured_drop: float
    """Mean drop over the calibration chips at `level`, in points."""
    ci_low: float
    """Lower end of the 95 % confidence band of the mean drop (normal approximation)."""
    ci_high: float
    chips: int

    @property
    def meets_target(self) -> bool:
        """True when the target drop lies in the 95 % band of the measured one: the level
        meets its target as far as the calibration chips can tell. False when the bisection
        stopped early (too few iterations) or never reached the target in its range."""
        return self.ci_low <= self.drop <= self.ci_high

    def as_dict(self) -> dict:
        """JSON-safe view, `meets_target` included."""
        return {**self.__dict__, "meets_target": self.meets_target}


def calibrate(
    population: Population,
    template: FaultStack,
    x: torch.Tensor,
    y: torch.Tensor,
    drops: Sequence[float],
    *,
    task: ScoredTask = "classification",
    bracket: tuple[float, float] | None = None,
    iterations: int = 14,
    progress: Callable[[int, int], None] | None = None,
) -> list[Calibration]:
    """Find, for each target drop, the level of the single fault in `template` that meets it.

    Bisection runs in log space on Monte Carlo estimates over `population.n` chips. Every
    level is evaluated on the same chips (the same seed), so the estimated drop is a smooth,
    nearly monotone function of the level and bisection converges. ``progress(done, total)``
    counts chips evaluated, chunk by chunk, over all ``len(drops) * iterations`` levels.
    """
    if len(template.faults) != 1:
        raise ConfigError("calibrate takes one fault kind, e.g. 'mult' or 'levelflip:bits=2'")
    if any(d <= 0 for d in drops):
        raise ConfigError(f"target drops must be positive points; got {list(drops)}")
    level_name = type(template.faults[0]).level_name
    lo, hi = bracket or DEFAULT_BRACKETS[level_name]
    ideal = population.with_faults(FaultStack(()), n=1).accuracy(x, y, task=task)[0].item()
    cache: dict[float, torch.Tensor] = {}
    total = len(drops) * iterations * population.n
    step = 0  # levels evaluated so far, for progress

    def chips_done(done: int, _: int) -> None:
        if progress is not None:
            progress(min(step * population.n + done, total), total)

    def drops_at(level: float) -> torch.Tensor:
        if level not in cache:
            pop = population.with_faults(template.with_level(level))
            cache[level] = ideal - pop.accuracy(x, y, task=task, progress=chips_done)
        return cache[level]

    results = []
    for target in sorted(drops):
        a, b = math.log(lo), math.log(hi)
        for _ in range(iterations):
            mid = 0.5 * (a + b)
            if drops_at(math.exp(mid)).mean() < target:
                a = mid
            else:
                b = mid
            step += 1
            chips_done(0, population.n)
        # the top of the bracket (p = 0.5 flips half of every bit) is only evaluated when
        # the bisection never met the target: it is the costliest level to simulate
        if b == math.log(hi) and drops_at(hi).mean() < target:
            _logger.warning("drop %.2f not reached at the top level %g", target, hi)
        level = math.exp(b)
        d = drops_at(level)
        half = 1.96 * d.std().item() / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        mean = d.mean().item()
        results.append(Calibration(target, level, mean, mean - half, mean + half, len(d)))
    return results
