"""`campaign_summary` and `accuracy_distribution` against values worked out by hand."""

import numpy as np
import pytest

from cimtest.evaluation import accuracy_distribution, campaign_summary


def test_summary_of_known_accuracies():
    accuracy = np.arange(1.0, 11.0)  # 1..10
    summary = campaign_summary(accuracy, ideal=12.0, seconds=2.0)
    assert summary["chips"] == 10 and summary["ideal_accuracy"] == 12.0
    assert summary["accuracy_mean"] == 5.5
    assert summary["accuracy_sd"] == pytest.approx(np.sqrt(82.5 / 9))  # sum of squares 82.5
    assert (summary["accuracy_min"], summary["accuracy_max"]) == (1.0, 10.0)
    assert summary["percentiles"]["50"] == 5.5 and summary["percentiles"]["99"] == 9.91
    assert summary["histogram"]["counts"] == [1] * 10
    assert summary["chips_per_s"] == 5.0


def test_one_chip_and_no_time():
    summary = campaign_summary(np.array([97.0]), ideal=99.0, seconds=0.0)
    assert summary["accuracy_sd"] == 0.0 and summary["chips_per_s"] is None


def test_accuracy_distribution_of_known_accuracies():
    # 1..21: linear interpolation puts the 5th percentile at 1 + 0.05 * 20 = 2, the median at
    # 11 and the 95th at 20
    row = accuracy_distribution(np.arange(1.0, 22.0))
    assert row == pytest.approx({"accuracy_mean": 11.0, "accuracy_sd": np.sqrt(38.5),
                                 "accuracy_p5": 2.0, "accuracy_p50": 11.0,
                                 "accuracy_p95": 20.0})
