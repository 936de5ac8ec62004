"""What a monitor's rows say: the population at each time, detection latency, false alarms.

Rates of events are exact Poisson (Garwood) intervals, shares Wilson intervals, both 95 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from cimtest.metrics import wilson_interval

__all__ = ["SECONDS_PER_YEAR", "false_alarms", "latency", "poisson_interval", "time_rows"]

SECONDS_PER_YEAR = 31557600.0
"""A Julian year, as `cimtest.faults.durations.UNITS` counts ``1y``."""


def time_rows(frame: pd.DataFrame, times: Sequence[float]) -> list[dict]:
    """One summary per time: chips in service, their accuracy, and the shares failing,
    flagged, flagged while passing (false alarms), remedied, re-verified and replaced."""
    rows = []
    for t in times:
        at = frame[frame["t"] == t]
        n = len(at)
        acc = at["accuracy"].to_numpy(dtype=np.float64)
        passing = ~at["failing"].to_numpy(dtype=bool)
        flagged = at["flagged"].to_numpy(dtype=bool)
        remedied = at["remedied"].to_numpy(dtype=bool)
        row = {
            "t": float(t), "chips": n,
            "accuracy_mean": _stat(np.mean, acc), "accuracy_sd": _stat(np.std, acc),
            "accuracy_p5": _stat(lambda a: np.percentile(a, 5), acc),
            "accuracy_p50": _stat(np.median, acc),
            "failing": _share(~passing), "flagged": _share(flagged),
            "false_alarms": _share(flagged[passing]),
            "missed": _share(~flagged[~passing]),
            "remedied": _share(remedied),
            "accuracy_after_mean": _stat(np.mean, at["accuracy_after"].to_numpy()[remedied]),
            "reverified": _share(at["reverified"].to_numpy(dtype=bool)[remedied]),
            "replaced": _share(at["replaced"].to_numpy(dtype=bool)),
        }
        rows.append(row)
    return rows


def latency(frame: pd.DataFrame) -> dict:
    """Per chip, the time from its first retest failing to the first flag at or after it
    (retests are the only times a flag can come): how many chips failed, how many of them
    were flagged (their latency's median and 90th percentile in seconds), how many never."""
    delays = []
    missed = 0
    for _, rows in frame.sort_values("t", kind="stable").groupby("chip", sort=True):
        failing = rows["failing"].to_numpy(dtype=bool)
        if not failing.any():
            continue
        first = int(np.argmax(failing))
        flags = np.flatnonzero(rows["flagged"].to_numpy(dtype=bool)[first:])
        if flags.size:
            t = rows["t"].to_numpy(dtype=np.float64)
            delays.append(t[first + flags[0]] - t[first])
        else:
            missed += 1
    delays_arr = np.asarray(delays, dtype=np.float64)
    return {"failed": len(delays) + missed, "detected": len(delays), "missed": missed,
            "detected_share": _share(np.arange(len(delays) + missed) < len(delays)),
            "latency_median_s": _stat(np.median, delays_arr),
            "latency_p90_s": _stat(lambda a: np.percentile(a, 90), delays_arr)}


def false_alarms(frame: pd.DataFrame) -> dict:
    """Flags on passing chips per chip-year of service, with a 95 % Poisson interval: each
    chip counts from programming to its last retest in service."""
    count = int((frame["flagged"] & ~frame["failing"]).sum())
    exposure = float(frame.groupby("chip")["t"].max().sum()) / SECONDS_PER_YEAR
    low, high = poisson_interval(count)
    if exposure <= 0:
        return {"count": count, "chip_years": exposure, "per_chip_year": None,
                "interval": [None, None]}
    return {"count": count, "chip_years": exposure, "per_chip_year": count / exposure,
            "interval": [low / exposure, high / exposure]}


def poisson_interval(count: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from one observed `count`."""
    alpha = 1 - level
    low = 0.0 if count == 0 else float(stats.chi2.ppf(alpha / 2, 2 * count) / 2)
    return low, float(stats.chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2)


def _share(mask: np.ndarray) -> dict | None:
    """``{"share", "interval"}`` of True in `mask` (Wilson 95 %); None if empty."""
    n = int(mask.size)
    if n == 0:
        return None
    k = int(np.count_nonzero(mask))
    low, high = wilson_interval(k, n)
    return {"share": k / n, "interval": [low, high]}


def _stat(fn, values: np.ndarray) -> float | None:
    """`fn(values)` as a float; None if there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return None if values.size == 0 else float(fn(values))
