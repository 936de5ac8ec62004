"""Scoring fitted pass/fail tests on an independent population: paper 2's metrics.

`evaluate_tests` forwards every test's inputs and the labelled data through each chip once,
so a chip's verdicts and its accuracy come from the very same weights, and scores each test
against the truth "accuracy above the test's A_cutoff".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cimtest.cutoffs import pass_fraction
from cimtest.data import Dataset
from cimtest.engine import InputBank, Population, chip_accuracies
from cimtest.evaluation.truth import ceiling, correct_answers
from cimtest.exceptions import ConfigError
from cimtest.methods.base import TestMethod, check_is_fitted
from cimtest.metrics import test_metrics
from cimtest.progress import Progress

__all__ = ["evaluate_tests"]


def evaluate_tests(
    tests: Sequence[TestMethod],
    chips: Population,
    data: Dataset,
    cutoff_accuracy: Sequence[float],
    *,
    progress: Progress | None = None,
) -> tuple[list[dict[str, float]], np.ndarray]:
    """TA, TE, YL, CTE and BTE (percent) of each test on `chips`, and the chips' accuracies.

    Parameters
    ----------
    tests : sequence of TestMethod
        Fitted tests of the same model.
    chips : Population
        The independent evaluation chips (never the ones a test was fitted on).
    data : Dataset
        Labelled data defining each chip's accuracy.
    cutoff_accuracy : sequence of float
        A_cutoff (percent) of each test: the truth is "accuracy > A_cutoff".
    progress : Progress, optional
        ``progress(done, total)`` after each chunk of chips.

    Returns
    -------
    (list of dict, numpy.ndarray)
        Per test, `cimtest.metrics.test_metrics`'s keys plus ``cutoff_accuracy``,
        ``truly_pass`` (percent of chips above it) and ``ceiling`` (the truth's split-half
        agreement, `cimtest.evaluation.truth.ceiling`; None for segmentation); float64 (n,)
        chip accuracies.
    """
    if len(tests) != len(cutoff_accuracy):
        raise ConfigError(f"{len(tests)} tests but {len(cutoff_accuracy)} cut-offs")
    for test in tests:
        check_is_fitted(test, ("inputs_", "threshold_"))
    bank = InputBank()
    columns = [bank.add(test.inputs_) for test in tests]
    data_columns = bank.add(data.x)
    features: list[list[np.ndarray]] = [[] for _ in tests]
    scores, answers = [], []
    for _, out in chips.iter_chunks(bank.inputs, progress=progress):
        for i, test in enumerate(tests):
            features[i].append(test.respond(out[:, columns[i]]))
        if data.task == "classification":
            answers.append(correct_answers(out[:, data_columns], data.y))
        else:
            scores.append(chip_accuracies(out[:, data_columns], data.y, data.task).cpu().numpy())
    correct = np.concatenate(answers) if answers else None
    # exact either way: counts over N, as chip_accuracies computes them
    accuracy = 100.0 * correct.mean(axis=1) if answers else np.concatenate(scores)
    rows = []
    for test, parts, cut in zip(tests, features, cutoff_accuracy):
        flagged = np.asarray(test.decide(np.concatenate(parts)), dtype=bool)
        rows.append({**test_metrics(~flagged, accuracy, float(cut)),
                     "cutoff_accuracy": float(cut),
                     "truly_pass": 100.0 * pass_fraction(accuracy, float(cut)),
                     "ceiling": None if correct is None else ceiling(
                         correct, float(cut), sources=data.sources)})
    return rows, accuracy
