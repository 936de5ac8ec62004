"""Test metrics against hand computations: Wilson interval, McNemar's exact test, coverage
(eq. 6, 7), AUC."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cimtest.exceptions import ConfigError
from cimtest.metrics import (
    Rate,
    coverage,
    false_alarm_rate,
    mcnemar_exact,
    paired_against_best,
    rate,
    roc_auc,
    verifiable_coverage,
    wilson_interval,
)


def test_wilson_interval_by_hand():
    # p = 0.5, n = 100, z = 1.96: centre 0.5, half = 1.96*sqrt(.0025 + 3.8416/40000)/1.038416
    lo, hi = wilson_interval(50, 100)
    half = 1.96 * math.sqrt(0.25 / 100 + 1.96**2 / 40000) / (1 + 1.96**2 / 100)
    assert lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)


def test_wilson_interval_edges():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1.96**2 / (10 + 1.96**2))
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(10 / (10 + 1.96**2))
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ConfigError):
        wilson_interval(3, 2)


def test_wilson_interval_textbook_value_and_closed_form():
    # 8 of 10 at 95 %: (0.490, 0.943), the usual textbook example of the Wilson interval
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    # SciPy's interval equals the closed form at z = 1.96 over a grid of k and n
    z = 1.96
    for n in (1, 2, 7, 30, 1000):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            p = k / n
            centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
            assert wilson_interval(k, n) == pytest.approx(
                (max(0.0, centre - half), min(1.0, centre + half)), abs=1e-12)
    # another level: z = 2.576 (99 %) is wider
    lo99, hi99 = wilson_interval(8, 10, z=2.576)
    assert lo99 < lo and hi99 > hi


def test_mcnemar_exact_by_hand():
    # b = 0 chips only A gets right, c = 6 only B: p = 2 * 0.5**6
    a = np.array([False] * 6 + [True] * 10 + [False] * 4)
    b = np.array([True] * 6 + [True] * 10 + [False] * 4)
    assert mcnemar_exact(a, b) == pytest.approx(2 * 0.5**6) == pytest.approx(0.03125)
    assert mcnemar_exact(b, a) == mcnemar_exact(a, b)  # symmetric
    # b = 1, c = 9: p = 2 * (C(10,0) + C(10,1)) / 2**10
    a = np.array([True] + [False] * 9 + [True] * 5)
    b = np.array([False] + [True] * 9 + [True] * 5)
    assert mcnemar_exact(a, b) == pytest.approx(2 * 11 / 1024)
    # b = c: p = 1; no discordant chip: p = 1; concordant chips carry no weight
    a = np.array([True, False, True, False])
    assert mcnemar_exact(a, ~a) == 1.0
    assert mcnemar_exact(a, a) == 1.0
    assert mcnemar_exact(torch.tensor([True] * 3), torch.tensor([True] * 3)) == 1.0
    with pytest.raises(ConfigError, match="differ in shape"):
        mcnemar_exact(a, a[:3])


def test_paired_against_best_marks_ties():
    rng = np.random.default_rng(0)
    good = rng.random(200) < 0.9
    worse = good.copy()
    worse[np.flatnonzero(good)[:40]] = False  # wrong on 40 chips the best gets right
    near = good.copy()
    near[np.flatnonzero(good)[:2]] = False  # 2 chips apart: no evidence of a difference
    best, paired = paired_against_best({"worse": worse, "good": good, "twin": good.copy(),
                                        "near": near})
    assert best == "good"
    assert paired["good"] == (1.0, True) and paired["twin"] == (1.0, True)
    assert paired["worse"][0] == pytest.approx(2 * 0.5**40) and not paired["worse"][1]
    assert paired["near"] == (pytest.approx(0.5), True)  # b = 0, c = 2: 2 * 0.25
    assert list(paired) == ["worse", "good", "twin", "near"]
    # the first of equally accurate tests is the best; alpha moves the line
    assert paired_against_best({"a": near, "b": near})[0] == "a"
    assert not paired_against_best({"near": near, "good": good}, alpha=0.6)[1]["near"][1]
    with pytest.raises(ConfigError, match="at least one"):
        paired_against_best({})
    with pytest.raises(ConfigError, match="same chips"):
        paired_against_best({"a": good, "b": good[:10]})


def test_coverage_counts_sigma_at_or_above_threshold():
    sigma = np.array([0.1, 0.2, 0.3, 0.4])
    cov = coverage(sigma, 0.2)
    assert isinstance(cov, Rate)
    assert cov.value == 0.75 and cov.n == 4
    assert (cov.low, cov.high) == pytest.approx(wilson_interval(3, 4))
    assert coverage(torch.tensor([0.5, 0.6]), 1.0).value == 0.0
    assert coverage(sigma, 0.2, strict=True).value == 0.5


def test_verifiable_coverage_needs_flag_and_drop_over_all_chips():
    sigma = np.array([0.5, 0.5, 0.1, 0.5])
    acc = np.array([90.0, 95.0, 80.0, 94.9])
    # chip 0: flagged + dropped; chip 1: flagged, no drop; chip 2: dropped, not flagged
    assert verifiable_coverage(sigma, 0.3, acc, baseline=95.0).value == 0.5
    assert verifiable_coverage(sigma, 0.5, acc, baseline=95.0, strict=True).value == 0.0
    with pytest.raises(ConfigError):
        verifiable_coverage(sigma, 0.3, acc[:3], baseline=95.0)


def test_false_alarm_rate_and_empty_rate():
    far = false_alarm_rate(np.array([True, False, False, False]))
    assert far.value == 0.25 and far.n == 4
    empty = rate(np.array([], dtype=bool))
    assert empty.n == 0 and math.isnan(empty.value)
    assert set(far.as_dict()) == {"value", "low", "high", "n"}


def test_roc_auc_by_hand_with_ties():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    labels = np.array([False, False, True, True, True])
    # pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>both, 0.4>0.1, 0.4=0.4 → (1+0+2+1+0.5)/6
    assert roc_auc(scores, labels) == pytest.approx(4.5 / 6)


def test_roc_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 1)  # many ties
    labels = rng.random(300) < 0.3 + 0.2 * (scores > 0)
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert math.isnan(roc_auc(scores, np.zeros(300, dtype=bool)))


def test_roc_curve_area_equals_auc_with_ties():
    from cimtest.metrics import roc_curve

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 300).astype(float)  # many ties
    positives = rng.random(300) < 0.3 + 0.1 * scores
    fpr, tpr = roc_curve(scores, positives)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert len(fpr) == len(np.unique(scores)) + 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(scores, positives), abs=1e-12)
