"""Calibration: the level of a fault kind whose mean accuracy drop meets a target.

Two searches, both on the same chips at every level (common random numbers):

* ``"bisect"`` (the default): bisection in log space, `iterations` full campaigns per target.
* ``"secant"``: at most `SECANT_CAMPAIGNS` campaign-equivalents (chips x images forwarded)
  per target, for the kinds whose chips' draws do not depend on the level (`eta`, `sigma`,
  and the ages `t`): bracket and interpolate on every 8th image (all the chips), then at
  most two levels on all the images (`_secant_level`). Cell-fault rates (`p`) draw other
  cells at every level and fall back to bisection, as does a search whose best level
  misses its target.

The levels found for drops of e.g. 0.5, 1, 2, 5 and 10 points are what the rest of cimtest
calls eta_0^1..5 (variations) and P_flip^1..5 (faults).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from cimtest.engine.population import Population
from cimtest.exceptions import ConfigError
from cimtest.faults import Fault, FaultStack
from cimtest.tasks import ScoredTask

__all__ = ["DEFAULT_BRACKETS", "SEARCHES", "SECANT_CAMPAIGNS", "Calibration", "calibrate",
           "common_draws"]

_logger = logging.getLogger(__name__)

DEFAULT_BRACKETS = {"p": (1e-8, 0.5), "eta": (1e-4, 3.0), "sigma": (1e-4, 3.0), "t": (1.0, 1e9)}
"""Search range of each kind of level: rates, relative noise scales, and seconds after
programming (1 s to about 32 years) for the kinds whose level is an age (the aihwkit kinds,
drift and retention)."""

SEARCHES = ("bisect", "secant")
"""The searches of `calibrate`: bisection (the default) and the secant search."""

SECANT_CAMPAIGNS = 3
"""Most chips x images the secant search forwards per target, in campaigns (all the chips
on all the images): one for its search on a subset of the images, two on all of them; the
ideal chip's forwards are counted in."""

SUBSET_SHARE = 8
"""The secant search's first phase evaluates about ``1 / SUBSET_SHARE`` of a campaign per
level: every chip on every 8th image where there are 256 images or more, else fewer images
on fewer chips (`_subset`)."""

SUBSET_TOLERANCE = 0.1
"""The first phase stops at a subset drop within this share of the target."""

TOLERANCE_SHARE = 0.05
"""The secant search stops early at a level whose mean drop over all the chips is within
this share of its 95 % half-band (or 1 % of the target, whichever is larger) of the
target."""


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


def common_draws(fault: Fault) -> bool:
    """Whether `fault`'s chips draw the same numbers at every level, so that each chip's
    accuracy is one smooth curve of the level: the variations (normals scaled by `eta` or
    `sigma`) and the faults whose level is their age (they draw nothing that depends on
    it). Cell faults (`p`) draw how many cells fail, and which, anew at every rate."""
    kind = type(fault)
    return kind.level_name in ("eta", "sigma") or kind.time_name == kind.level_name


class _Levels:
    """The per-chip drops on one set of images at each level evaluated, and the chips x
    images forwarded for them. Chip ``i`` at a level is set by (seed, i) alone, so a row
    can be evaluated chip range by chip range and is still what one campaign gives."""

    def __init__(self, population: Population, template: FaultStack, x: torch.Tensor,
                 y: torch.Tensor, task: ScoredTask) -> None:
        self.population, self.template, self.x, self.y, self.task = population, template, x, y, task
        self.ideal = population.with_faults(FaultStack(()), n=1).accuracy(x, y, task=task)[0].item()
        self.rows: dict[float, list[torch.Tensor]] = {}
        self.forwards = len(x)
        """Chips x images forwarded so far, the ideal chip's included."""

    def done(self, level: float) -> int:
        """How many of the first chips are evaluated at `level`."""
        return sum(len(part) for part in self.rows.get(level, []))

    def drops(self, level: float, chips: int,
              progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """The drops (points) of the first `chips` chips at `level`, evaluating only those
        not evaluated before."""
        parts = self.rows.setdefault(level, [])
        have = self.done(level)
        if have < chips:
            pop = self.population.with_faults(self.template.with_level(level))
            wanted = None if have == 0 and chips == self.population.n else range(have, chips)
            parts.append(self.ideal - pop.accuracy(self.x, self.y, wanted, task=self.task,
                                                   progress=progress))
            self.forwards += (chips - have) * len(self.x)
        row = parts[0] if len(parts) == 1 else torch.cat(parts)
        return row[:chips]


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
    search: str = "bisect",
    progress: Callable[[int, int], None] | None = None,
) -> list[Calibration]:
    """Find, for each target drop, the level of the single fault in `template` that meets it.

    ``search="bisect"`` bisects in log space, `iterations` steps, each a campaign of
    `population.n` chips. Every level is evaluated on the same chips (the same seed), so the
    estimated drop is a smooth, nearly monotone function of the level and bisection
    converges. ``search="secant"`` forwards at most `SECANT_CAMPAIGNS` campaigns of chips x
    images per target where `common_draws` holds (see the module docstring), and bisects
    where it does not. ``progress(done, total)`` counts chips evaluated, chunk by chunk, over
    all ``len(drops) * iterations`` levels (bisection) or ``len(drops) * SECANT_CAMPAIGNS``
    campaigns (secant).
    """
    if len(template.faults) != 1:
        raise ConfigError("calibrate takes one fault kind, e.g. 'mult' or 'levelflip:bits=2'")
    if any(d <= 0 for d in drops):
        raise ConfigError(f"target drops must be positive points; got {list(drops)}")
    if search not in SEARCHES:
        raise ConfigError(f"the calibration search is one of {', '.join(SEARCHES)}; got "
                          f"{search!r}")
    fault = template.faults[0]
    lo, hi = bracket or DEFAULT_BRACKETS[type(fault).level_name]
    levels = _Levels(population, template, x, y, task)
    n, m = population.n, len(x)
    secant = search == "secant" and common_draws(fault)
    if search == "secant" and not secant:
        _logger.info("%s draws anew at every level: calibrating by bisection", fault.kind)
    subset = _subset(population, template, x, y, task) if secant else None
    if subset is not None:
        # subset levels a target may evaluate: one campaign, less the two ideal chips'
        share = len(subset.x) * subset.population.n / (m * n)
        evaluations = int((1.0 - (m + len(subset.x)) / (m * n)) / share)
    total = len(drops) * (SECANT_CAMPAIGNS if secant else iterations) * n
    step = 0  # bisection steps so far, for progress

    def chips_done(done: int, _: int) -> None:
        if progress is None:
            return
        if secant:  # campaign chips: chips x images forwarded over the images of a campaign
            forwards = levels.forwards + subset.forwards - m - len(subset.x)
            progress(min(forwards // m + done, total), total)
        else:
            progress(min(step * n + done, total), total)

    def subset_done(done: int, _: int) -> None:
        chips_done(done * len(subset.x) // m, 0)

    def bisect(target: float) -> float:
        nonlocal step
        a, b = math.log(lo), math.log(hi)
        for _ in range(iterations):
            mid = 0.5 * (a + b)
            if levels.drops(math.exp(mid), n, chips_done).mean() < target:
                a = mid
            else:
                b = mid
            step += 1
            chips_done(0, n)
        # the top of the bracket (p = 0.5 flips half of every bit) is only evaluated when
        # the bisection never met the target: it is the costliest level to simulate
        if b == math.log(hi) and levels.drops(hi, n, chips_done).mean() < target:
            _logger.warning("drop %.2f not reached at the top level %g", target, hi)
        return math.exp(b)

    def measured(target: float, level: float) -> Calibration:
        d = levels.drops(level, n, chips_done)
        half = 1.96 * d.std().item() / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        mean = d.mean().item()
        return Calibration(target, level, mean, mean - half, mean + half, len(d))

    results = []
    seen: dict[float, float] = {}  # the secant search's subset: log level -> mean drop
    for target in sorted(drops):
        level = None
        if secant:
            level = _secant_level(
                lambda v: subset.drops(v, subset.population.n, subset_done).mean().item(),
                lambda v: levels.drops(v, n, chips_done), target, lo, hi, evaluations, seen)
            if level is None or not measured(target, level).meets_target:
                _logger.info("the secant search did not meet a %g-point drop: bisecting",
                             target)
                total += iterations * n
                level = None
        if level is None:
            level = bisect(target)
        results.append(measured(target, level))
    return results


def _subset(population: Population, template: FaultStack, x: torch.Tensor, y: torch.Tensor,
            task: ScoredTask) -> _Levels:
    """The secant search's first phase: about ``1 / SUBSET_SHARE`` of a campaign per level.
    Every chip on every 8th image where there are 256 images or more: the same chips as a
    campaign, so the same curve up to the images' sampling noise: on the demo's population
    (resnet20-8, 64 chips, egis-typical at a 2-point drop) the eight strided eighths of the
    digits gave 1.1-3.0 points, the eight eighths of the chips 0.5-6.3. With fewer images,
    every s-th image (at least 32 of them) on the first ``ceil(n * s / 8)`` chips (at least
    2)."""
    stride = 1
    while stride < SUBSET_SHARE and len(x) // (2 * stride) >= 32:
        stride *= 2
    chips = min(population.n, max(2, -(-population.n * stride // SUBSET_SHARE)))
    return _Levels(population.with_faults(template, n=chips), template, x[::stride],
                   y[::stride], task)


def _secant_level(
    subset: Callable[[float], float],
    full: Callable[[float], torch.Tensor],
    target: float,
    lo: float,
    hi: float,
    evaluations: int,
    seen: dict[float, float] | None = None,
) -> float | None:
    """A level whose mean drop over all the chips is close to `target`, in at most
    `SECANT_CAMPAIGNS` campaigns of forwards; None when the subset never brackets the
    target in [lo, hi] (the caller bisects).

    ``subset(level)`` is the mean drop at `level` on the subset, of which `evaluations` new
    levels may be evaluated (about one campaign); ``full(level)`` the drops of all the
    chips, one campaign, twice at most. `seen` holds the subset's drops by log level from
    earlier targets (a cache, updated). With the same chips and images at every level, each
    chip's drop is a smooth curve of the level, and so are the means over all the images
    and over the subset's:

    1. On the subset: bisection in log space until the target is bracketed by evaluated
       levels, then interpolation of log drop against log level between the bracket's ends
       (a bisection step whenever an interpolation did not halve the bracket, or a drop is
       not positive), until the subset's drop is within `SUBSET_TOLERANCE` of the target;
       its crossing of the target, u1.
    2. On all the chips at u1: the drop D1. Unless it is within the tolerance of the
       target, the subset's curve corrected by the difference D1 - subset(u1) (both on the
       same chips and images, so the change of the subset's drop between two near levels
       estimates the change of the whole one, without the bias a ratio would carry) gives
       u2, interpolated (and checked on the subset while its budget lasts); the drop
       there on all the chips, D2. The nearer of D1 and D2 to the target wins.
    """
    seen = {} if seen is None else seen
    budget = [evaluations]  # subset levels left to evaluate

    def on_subset(u: float) -> float | None:
        if u not in seen:
            if budget[0] == 0:
                return None
            budget[0] -= 1
            seen[u] = subset(math.exp(u))
        return seen[u]

    # the bracket so far: the levels of earlier targets on the subset count
    b, fb = min(((u, f) for u, f in seen.items() if f >= target), default=(math.log(hi), None))
    a, fa = max(((u, f) for u, f in seen.items() if f < target and u < b),
                default=(math.log(lo), None))
    near = [u for u, f in seen.items() if abs(f - target) <= SUBSET_TOLERANCE * target]
    bisect_next = False
    while budget[0] > 2 and not near:  # two kept for step 2
        interpolated = (fa is not None and fb is not None and fa > 0 and fb > 0
                        and not bisect_next)
        u = _crossing(a, fa, b, fb, target) if interpolated else 0.5 * (a + b)
        width = b - a
        f = on_subset(u)
        if f < target:
            a, fa = u, f
        else:
            b, fb = u, f
        bisect_next = interpolated and (b - a) > 0.5 * width
        if abs(f - target) <= SUBSET_TOLERANCE * target:
            near = [u]
    if not near and (fa is None or fb is None):
        return None
    if near:
        u = min(near, key=lambda v: abs(seen[v] - target))
    else:
        u = _crossing(a, fa, b, fb, target) if fa > 0 else 0.5 * (a + b)

    points: list[tuple[float, float]] = []  # (log level, mean drop over all the chips)
    while True:
        d = full(math.exp(u))
        mean = d.mean().item()
        points.append((u, mean))
        half = 1.96 * d.std().item() / math.sqrt(len(d)) if len(d) > 1 else 0.0
        if abs(mean - target) <= max(TOLERANCE_SHARE * half, 0.01 * target) \
                or len(points) == SECANT_CAMPAIGNS - 1:
            break
        f1 = on_subset(u)
        if f1 is None:
            break
        goal = f1 + target - mean  # the subset's drop where all the chips' meets the target
        step = _towards(seen, goal, u, math.log(lo), math.log(hi))
        for _ in range(2):  # checked on the subset, and once more interpolated
            if on_subset(step) is None or abs(seen[step] - goal) <= 0.01 * target:
                break
            step = _towards(seen, goal, u, math.log(lo), math.log(hi))
        u = step
        if any(u == p[0] for p in points):
            break
    return math.exp(min(points, key=lambda p: (abs(p[1] - target), p[0]))[0])


def _towards(seen: dict[float, float], goal: float, near: float, lo: float,
             hi: float) -> float:
    """Where the subset's drop meets `goal`: interpolated (log drop against log level)
    between neighbouring evaluated levels on either side of it (the pair nearest `near`),
    else extrapolated from the two evaluated levels nearest it (at most a factor of 2 in
    the level), in [lo, hi]."""
    curve = sorted(seen.items())
    pairs = [(ua, fa, ub, fb) for (ua, fa), (ub, fb) in itertools.pairwise(curve)
             if min(fa, fb) < goal <= max(fa, fb)]
    if pairs:
        ua, fa, ub, fb = min(pairs, key=lambda p: abs(p[0] + p[2] - 2 * near))
        if fa > 0 and fb > 0 and goal > 0:
            return _crossing(ua, fa, ub, fb, goal, clamp=False)
        return ua + (ub - ua) * (goal - fa) / (fb - fa)
    (u1, f1), (u2, f2) = sorted(curve, key=lambda p: abs(p[1] - goal))[:2]
    if f1 > 0 and f2 > 0 and goal > 0 and f1 != f2:
        step = (math.log(goal) - math.log(f1)) * (u2 - u1) / (math.log(f2) - math.log(f1))
    elif f1 != f2:
        step = (goal - f1) * (u2 - u1) / (f2 - f1)
    else:
        step = math.copysign(math.log(2.0), goal - f1)
    step = min(max(step, -math.log(2.0)), math.log(2.0))
    return min(max(u1 + step, lo), hi)


def _crossing(a: float, fa: float, b: float, fb: float, target: float, *,
              clamp: bool = True) -> float:
    """Where the line through (a, log fa) and (b, log fb) meets log `target` (a drop grows
    as a power of the level); with `clamp`, kept a tenth of the bracket from its ends."""
    t = (math.log(target) - math.log(fa)) / (math.log(fb) - math.log(fa)) if fb != fa else 0.5
    return a + (b - a) * (min(max(t, 0.1), 0.9) if clamp else t)
