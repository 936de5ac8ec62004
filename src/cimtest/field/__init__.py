"""field/: chips that age in service, retested by a fitted test (paper 1's online flow).

`Monitor` retests a population at increasing times, with the chip's own remedies
(`LayerReads`: drift compensation, re-calibration; re-programming); `summary` turns its rows
into the population at each time, detection latency and false alarms per chip-year;
`MonitorStore` keeps a run so that it resumes.
"""

from cimtest.field.monitor import COMPENSATIONS, REMEDIES, Monitor
from cimtest.field.reads import LayerReads
from cimtest.field.store import COLUMNS, MonitorStore
from cimtest.field.summary import false_alarms, latency, poisson_interval, time_rows

__all__ = [
    "COLUMNS",
    "COMPENSATIONS",
    "REMEDIES",
    "LayerReads",
    "Monitor",
    "MonitorStore",
    "false_alarms",
    "latency",
    "poisson_interval",
    "time_rows",
]
