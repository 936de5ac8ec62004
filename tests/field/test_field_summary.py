"""What a monitor's rows say, checked on rows written by hand: shares at each time,
detection latency, false alarms per chip-year and the exact Poisson interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cimtest.field import false_alarms, latency, poisson_interval, time_rows
from cimtest.field.summary import SECONDS_PER_YEAR

H, D, Y = 3600.0, 86400.0, SECONDS_PER_YEAR


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows (t, chip, accuracy, flagged, failing); no remedy."""
    frame = pd.DataFrame(rows, columns=["t", "chip", "accuracy", "flagged", "failing"])
    return frame.assign(generation=0, score=0.0, remedied=False, accuracy_after=np.nan,
                        reverified=False, replaced=False)


# chip 0 fails at 1d, flagged at 1y (latency 1y - 1d); chip 1 fails at 1h and is flagged at
# once (latency 0); chip 2 never fails but is flagged at 1h (a false alarm); chip 3 fails at
# 1y and is never flagged (missed)
FRAME = _frame([
    (H, 0, 99.0, False, False), (D, 0, 90.0, False, True), (Y, 0, 80.0, True, True),
    (H, 1, 80.0, True, True), (D, 1, 70.0, True, True), (Y, 1, 60.0, True, True),
    (H, 2, 99.0, True, False), (D, 2, 99.0, False, False), (Y, 2, 99.0, False, False),
    (H, 3, 99.0, False, False), (D, 3, 99.0, False, False), (Y, 3, 90.0, False, True),
])


def test_latency_from_first_failing_retest_to_first_flag():
    result = latency(FRAME)
    assert (result["failed"], result["detected"], result["missed"]) == (3, 2, 1)
    assert result["latency_median_s"] == pytest.approx((Y - D) / 2)
    assert result["detected_share"]["share"] == pytest.approx(2 / 3)


def test_false_alarms_per_chip_year():
    result = false_alarms(FRAME)
    assert result["count"] == 1
    assert result["chip_years"] == pytest.approx(4.0)  # 4 chips retested to 1 year
    assert result["per_chip_year"] == pytest.approx(0.25)
    low, high = poisson_interval(1)
    assert result["interval"] == pytest.approx([low / 4, high / 4])


def test_shares_at_each_time():
    rows = time_rows(FRAME, [H, D, Y])
    assert [r["chips"] for r in rows] == [4, 4, 4]
    assert [r["failing"]["share"] for r in rows] == [0.25, 0.5, 0.75]
    assert [r["flagged"]["share"] for r in rows] == [0.5, 0.25, 0.5]
    assert [r["false_alarms"]["share"] for r in rows] == pytest.approx([1 / 3, 0.0, 0.0])
    assert rows[0]["accuracy_mean"] == pytest.approx(94.25)
    assert rows[0]["remedied"]["share"] == 0 and rows[0]["accuracy_after_mean"] is None


@pytest.mark.parametrize(("count", "expected"), [
    # Garwood's exact 95 % limits, as tabulated (e.g. Ulm 1990, Am. J. Epidemiol. 131: 373)
    (0, (0.0, 3.689)), (1, (0.0253, 5.572)), (10, (4.795, 18.39))])
def test_poisson_interval_matches_the_tables(count, expected):
    assert poisson_interval(count) == pytest.approx(expected, abs=2e-3, rel=1e-3)
