"""A_cutoff: the accuracy above which a chip passes, set from the training chips (paper 2).

Kept free of torch so that the command line checks a ``--cutoff`` before importing anything
heavy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from cimtest.exceptions import ConfigError

__all__ = ["Cutoff", "cutoff_at", "parse_cutoff", "pass_fraction"]


def cutoff_at(accuracies: ArrayLike, p: float) -> float:
    """A_p of paper 2 §VII: the p-th percentile of the training chips' accuracies.

    Parameters
    ----------
    accuracies : array-like
        float (D,) accuracies of the labelled training chips, in percent.
    p : float
        Percentile in [0, 100]; with A_p as cutoff about (100 - p) % of chips pass.

    Returns
    -------
    float
        The percentile (numpy's linear interpolation between order statistics).
    """
    values = np.asarray(accuracies, dtype=np.float64).reshape(-1)
    if values.size == 0 or not 0 <= p <= 100:
        raise ConfigError(f"cutoff_at needs accuracies and 0 <= p <= 100; got p={p}")
    return float(np.percentile(values, p))


@dataclass(frozen=True)
class Cutoff:
    """How A_cutoff is set from the training chips' accuracies, by name.

    ``A70`` follows paper 2's worked example ("for A_cutoff = A70, 70 % DUTs with highest
    accuracy are referred as pass"): A_cutoff is the 30th percentile, so about 70 % of the
    chips pass; it is the default reading, and its TA rises with p as the paper's does.
    ``P70`` is the percentile reading of the paper's definition ("the p-th percentile"):
    A_cutoff is the 70th percentile and about 30 % pass. At p = 50 both give the median.
    Ties make the share that passes (`pass_fraction`, strictly above A_cutoff) differ from p.
    ``D2`` is a specification rather than a share: a chip passes unless its accuracy is more
    than 2 points below the ideal chip's (`ideal`), the line `cimtest monitor` judges by.
    """

    reading: Literal["A", "P", "D"]
    p: float
    ideal: float | None = None
    """The ideal chip's accuracy (percent), which a ``D`` cutoff counts down from."""

    @property
    def name(self) -> str:
        """``"A70"``, ``"P70"`` or ``"D2"``."""
        return f"{self.reading}{self.p:g}"

    def accuracy(self, accuracies: ArrayLike) -> float:
        """A_cutoff (percent) on these training chips' accuracies."""
        if self.reading == "D":
            if self.ideal is None:
                raise ConfigError(f"cutoff {self.name} counts from the ideal chip's accuracy, "
                                  "which was not given")
            return self.ideal - self.p
        return cutoff_at(accuracies, 100.0 - self.p if self.reading == "A" else self.p)


def parse_cutoff(text: str, *, drop: bool = False) -> Cutoff:
    """``"A70"`` (70 % of the chips pass) or ``"P70"`` (above the 70th percentile pass); with
    `drop`, also ``"D2"`` (at most 2 points below the ideal chip pass; the caller sets
    `Cutoff.ideal`)."""
    match = re.fullmatch(r"([AaPpDd])(\d+(?:\.\d+)?)", str(text).strip())
    reading = match.group(1).upper() if match else ""
    if not match or not 0 <= float(match.group(2)) <= 100 or (reading == "D" and not drop):
        also = " or D2 (chips at most 2 points below the ideal chip pass)" if drop else ""
        raise ConfigError(f"--cutoff must look like A50 (the 50 % most accurate chips pass) or "
                          f"P70 (chips above the 70th percentile pass){also}; got {text!r}")
    return Cutoff(reading, float(match.group(2)))


def pass_fraction(accuracies: ArrayLike, cutoff_accuracy: float) -> float:
    """Share of the chips (0..1) whose accuracy is above `cutoff_accuracy`: the pass rule."""
    values = np.asarray(accuracies, dtype=np.float64).reshape(-1)
    return float((values > cutoff_accuracy).mean()) if values.size else math.nan
