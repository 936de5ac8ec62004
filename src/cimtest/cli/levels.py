"""The fault level of `compare` and `egis fit`: calibrated to a mean accuracy drop (--drop),
or given, in which case the drop it causes is reported from the chips already evaluated."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from cimtest.cli.common import progress_bar
from cimtest.exceptions import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from cimtest.data import Dataset
    from cimtest.engine.calibrate import Calibration
    from cimtest.hardware.periphery import Periphery
    from cimtest.loading import LoadedModel

__all__ = [
    "CALIBRATION_ITERATIONS",
    "calibrated_fault",
    "check_drop",
    "check_search",
    "drop_line",
    "ideal_accuracy",
    "refuse_level",
    "warn_if_missed",
]

CALIBRATION_ITERATIONS = 10
"""Bisection steps of the calibration inside `compare` and `egis fit` (the search range of
`cimtest.engine.calibrate.DEFAULT_BRACKETS` narrowed 1,024-fold in log space)."""

_logger = logging.getLogger(__name__)

_LEVEL_KEY = re.compile(r"(?:^|[:,])\s*(?:p|eta|sigma|t)\s*=")


SEARCHES = ("bisect", "secant")
"""The level searches of `cimtest.engine.calibrate.calibrate`."""


def check_search(search: str) -> None:
    """Refuse a --search that is not one of `SEARCHES`."""
    if search not in SEARCHES:
        raise ConfigError(f"--search is {' or '.join(SEARCHES)}; got {search!r}")


def check_drop(fault: str, drop: float | None, chips: int, search: str = "bisect") -> None:
    """Refuse, before any work, a --drop that is not positive, a fault that gives its own
    level with --drop, a spec that does not parse, too few calibration chips, or an unknown
    --search."""
    from cimtest.faults import parse_spec

    check_search(search)
    if drop is None:
        parse_spec(fault)
        return
    if not drop > 0:
        raise ConfigError(f"--drop must be a positive number of points; got {drop:g}")
    if chips < 2:
        raise ConfigError(f"--calibration-chips must be at least 2; got {chips}")
    stack = parse_spec(fault, allow_missing_level=True)
    if len(stack.faults) != 1:
        raise ConfigError(f"--drop calibrates one fault kind; {fault!r} holds "
                          f"{len(stack.faults)}")
    refuse_level(fault, "--drop calibrates the level", f" --drop {drop:g}")


def refuse_level(fault: str, why: str, example_tail: str = "") -> None:
    """Refuse a fault spec that gives its level (``p``, ``eta``, ``sigma`` or ``t``) to a
    command that finds it: one line saying `why` and how to write the spec without it."""
    if _LEVEL_KEY.search(fault):
        kind = fault.split(":")[0]
        raise ConfigError(f"{why}: give the fault without it, e.g. --fault {kind}"
                          f"{example_tail}; got {fault!r}")


def warn_if_missed(result: Calibration) -> None:
    """One warning line when the calibrated level's measured drop misses its target: the
    target lies outside the 95 % band of the drop measured at the level found."""
    if not result.meets_target:
        _logger.warning("the level found, %.4g, gives a mean drop of %.2f points (95 %% band "
                        "%.2f-%.2f), which misses the target of %g: give more --iterations "
                        "(or a target within the fault's range)", result.level,
                        result.measured_drop, result.ci_low, result.ci_high, result.drop)


def calibrated_fault(
    loaded: LoadedModel,
    fault: str,
    drop: float,
    dataset: Dataset,
    *,
    seed: int,
    chips: int,
    array_size: tuple[int, int] | None,
    bits_per_cell: int,
    memory: str,
    periphery: Periphery | None = None,
    device: torch.device | None = None,
    search: str = "bisect",
) -> tuple[str, Calibration]:
    """The spec of `fault` at the level whose mean accuracy drop on `dataset` meets `drop`
    points (`cimtest.engine.calibrate.calibrate` by `search`, `chips` chips of seed `seed`),
    and the calibration; the level is kept to 4 significant digits, as printed; chips on
    `device`."""
    from cimtest.engine import Population
    from cimtest.engine.calibrate import calibrate
    from cimtest.faults import parse_spec

    template = parse_spec(fault, allow_missing_level=True)
    population = Population(loaded.module, "none", seed, chips, array_size=array_size,
                            bits_per_cell=bits_per_cell, memory=memory, periphery=periphery,
                            device=device)
    with progress_bar(f"calibrating {fault} to a {drop:g}-point drop") as update:
        result = calibrate(population, template, dataset.x, dataset.y, [drop],
                           task=loaded.task, iterations=CALIBRATION_ITERATIONS,
                           search=search, progress=update)[0]
    warn_if_missed(result)
    return template.with_level(float(f"{result.level:.4g}")).spec(), result


def ideal_accuracy(loaded: LoadedModel, dataset: Dataset, **kw) -> float:
    """The ideal chip's accuracy (percent) on `dataset`."""
    from cimtest.engine import Population

    return float(Population(loaded.module, "none", n=1, **kw).accuracy(
        dataset.x, dataset.y, task=loaded.task)[0])


def drop_line(spec: str, ideal: float, accuracy: np.ndarray, calibration=None) -> str:
    """One line: the level and the mean accuracy drop it causes on the chips evaluated (and
    the calibration that chose it, if any)."""
    mean = ideal - float(accuracy.mean())
    line = (f"{spec}: mean accuracy drop {mean:.2f} points over {accuracy.size} chips "
            f"(ideal chip {ideal:.2f} %)")
    if calibration is not None:
        line = (f"calibrated {spec}: mean drop {calibration.measured_drop:.2f} points on "
                f"{calibration.chips} calibration chips (target {calibration.drop:g}, 95 % "
                f"band {calibration.ci_low:.2f}-{calibration.ci_high:.2f}); {mean:.2f} points "
                f"over the {accuracy.size} training chips")
    return line
