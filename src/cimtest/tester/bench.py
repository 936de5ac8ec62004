"""Verdicts from responses: the same `respond` → `score` → `decide` path as in simulation.

`decide_responses` turns responses recorded on a bench (or played by any `Chip` driver)
into one verdict per chip; `check_plausible` first refuses responses that cannot be this
test's (another test's, another model's, or in another input order); `apply_chips` runs an
exported test on chips one after another and keeps the verdicts given before a driver fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from cimtest.exceptions import TesterError
from cimtest.methods.base import TestMethod
from cimtest.tester.drivers import Chip, run_chip
from cimtest.tester.exported import ExportedTest
from cimtest.tester.verdicts import Verdicts

__all__ = ["DEVIATION_LIMIT", "ApplyError", "apply_chips", "check_plausible", "decide_responses",
           "deviation"]

DEVIATION_LIMIT = 1.0
"""Largest median `deviation` of a lot's responses from the ideal chip's. Measured (docs/
tester.md): lots at a 2-point drop sit at 0.2-0.35, lots of chips far beyond use at 0.7-1.2,
another test's or another input order's outputs at 1.1-2.5; so the check catches files that
do not belong to the test, not every reordering (pass --force past it)."""


class ApplyError(TesterError):
    """A driver failed on one chip; `verdicts` holds those given before it."""

    def __init__(self, message: str, verdicts: Verdicts) -> None:
        super().__init__(message)
        self.verdicts = verdicts


def deviation(outputs: np.ndarray, ideal: np.ndarray) -> np.ndarray:
    """Each chip's RMS distance from the ideal chip's responses over the RMS of those
    responses, float64 ``(chips,)``: 0 for the ideal chip."""
    ideal = np.asarray(ideal, dtype=np.float64)
    flat = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    scale = max(float(np.sqrt(np.mean(ideal**2))), 1e-12)
    return np.sqrt(np.mean((flat - ideal.reshape(1, -1)) ** 2, axis=1)) / scale


def check_plausible(exported: ExportedTest, outputs: np.ndarray, *,
                    limit: float = DEVIATION_LIMIT) -> None:
    """Refuse in one line responses whose shape is not the test's, or that are not finite,
    or whose median chip deviates from the ideal chip's responses by more than `limit`."""
    expected = exported.response_shape
    if tuple(outputs.shape[1:]) != expected:
        raise TesterError(f"responses of shape {tuple(outputs.shape)}; this test expects "
                          f"(chips, {', '.join(map(str, expected))})")
    bad = int((~np.isfinite(outputs)).sum())
    if bad:
        raise TesterError(f"the responses hold {bad} NaN or infinite values")
    if len(outputs) == 0:
        raise TesterError("the responses hold no chips")
    median = float(np.median(deviation(outputs, exported.ideal)))
    if median > limit:
        raise TesterError(
            f"these responses do not look like this test's: the median chip differs from the "
            f"ideal chip's responses by {100 * median:.0f} % of their size (another test's or "
            f"another model's outputs, or the inputs run in another order?); pass --force to "
            "decide anyway")


def decide_responses(test: TestMethod, chips: tuple[str, ...],
                     outputs: np.ndarray) -> Verdicts:
    """One verdict per chip from its outputs ``(chips, inputs, *output_shape)`` on the test's
    inputs: ``test.decide(test.respond(outputs))``, as in simulation."""
    features = test.respond(torch.from_numpy(np.ascontiguousarray(outputs, dtype=np.float32)))
    score = np.asarray(test.score(features), dtype=np.float64)
    return Verdicts(method=test.name, chips=tuple(chips), flagged=test.decide(features),
                    score=score, threshold=float(test.threshold_), flag_word=test.flag_word)


def apply_chips(
    test: TestMethod,
    inputs: np.ndarray,
    response_shape: tuple[int, ...],
    chips: Iterable[tuple[str, Chip]],
    *,
    progress: Callable[[int], None] | None = None,
) -> Verdicts:
    """Run `inputs` (the test's, as exported) on each chip in turn and decide its verdict;
    each chip must answer `response_shape`.

    Raises `ApplyError` (with the verdicts given so far) naming the chip whose driver raised
    or returned the wrong shape or non-finite values, or whose id repeats one.
    """
    shape = tuple(response_shape)
    given: list[Verdicts] = []
    seen: set[str] = set()
    for chip, driver in chips:
        if chip in seen:
            raise ApplyError(f"chip id {chip} appears twice", _joined(test, given))
        seen.add(chip)
        try:
            outputs = run_chip(chip, driver, inputs, shape)
        except TesterError as exc:
            raise ApplyError(str(exc), _joined(test, given)) from None
        given.append(decide_responses(test, (chip,), outputs[None]))
        if progress is not None:
            progress(len(given))
    return _joined(test, given)


def _joined(test: TestMethod, parts: list[Verdicts]) -> Verdicts:
    """The verdicts of `parts` as one `Verdicts` (none: an empty one)."""
    if not parts:
        return Verdicts(method=test.name, chips=(), flagged=np.zeros(0, dtype=bool),
                        score=np.zeros(0), threshold=float(test.threshold_),
                        flag_word=test.flag_word)
    return Verdicts(method=test.name, chips=tuple(c for p in parts for c in p.chips),
                    flagged=np.concatenate([p.flagged for p in parts]),
                    score=np.concatenate([p.score for p in parts]),
                    threshold=parts[0].threshold, flag_word=test.flag_word)
