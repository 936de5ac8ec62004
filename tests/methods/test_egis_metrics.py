"""TA / TE / YL / CTE / BTE (paper 2 §VII) and A_p against hand-counted confusion matrices."""

import math

import numpy as np
import pytest

from cimtest.exceptions import ConfigError
from cimtest.metrics import cutoff_at, test_metrics


def test_metrics_hand_counted():
    # cutoff 90: truly pass iff A > 90
    acc = np.array([95.0, 92.0, 91.0, 89.5, 90.0, 88.0, 85.0, 93.0, 89.0, 70.0])
    predicted = np.array([1, 1, 0, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    # TP: 95, 92 (2); FN: 91, 93 (2); FP: 89.5, 90, 88 (3); TN: 85, 89, 70 (3)
    # CTE: predicted pass with A < 89: 88 (1); BTE: 89 <= A <= 90 predicted pass: 89.5, 90 (2)
    m = test_metrics(predicted, acc, 90.0)
    assert m == pytest.approx({"ta": 50.0, "te": 30.0, "yl": 20.0, "cte": 10.0, "bte": 20.0})
    assert m["te"] == pytest.approx(m["cte"] + m["bte"])


def test_metrics_boundaries_and_perfect_test():
    acc = np.array([89.0, 90.0, 90.5])
    # 89.0 = cutoff - 1 is benign, 90.0 = cutoff fails but is benign too
    m = test_metrics(np.array([True, True, True]), acc, 90.0)
    assert m == pytest.approx({"ta": 100 / 3, "te": 200 / 3, "yl": 0.0, "cte": 0.0,
                               "bte": 200 / 3})
    perfect = test_metrics(acc > 90.0, acc, 90.0)
    assert perfect == {"ta": 100.0, "te": 0.0, "yl": 0.0, "cte": 0.0, "bte": 0.0}


def test_metrics_empty_and_mismatch():
    assert all(math.isnan(v) for v in test_metrics(np.array([], bool), np.array([]), 1).values())
    with pytest.raises(ConfigError):
        test_metrics(np.array([True]), np.array([1.0, 2.0]), 1.0)


def test_cutoff_at_percentiles():
    acc = np.arange(1.0, 101.0)  # 1..100
    assert cutoff_at(acc, 50) == pytest.approx(50.5)
    assert cutoff_at(acc, 70) == pytest.approx(70.3)
    # A70 as cutoff: 30 % of chips pass (acc > A70)
    assert (acc > cutoff_at(acc, 70)).mean() == pytest.approx(0.30)
    with pytest.raises(ConfigError):
        cutoff_at(acc, 101)
