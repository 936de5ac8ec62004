"""Ages of a chip from text such as ``1h,1d,1w,1mo,1y``: seconds since programming.

The faults with a time model (`Fault.time_name`) take their age in seconds; people write
hours, days and years, and ``--at`` takes a list of them.
"""

from __future__ import annotations

import math
import re

from cimtest.exceptions import ConfigError

__all__ = ["UNITS", "format_duration", "parse_duration", "parse_times"]

UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
         "mo": 2629800.0, "y": 31557600.0}
"""Seconds per unit; a year is a Julian year (365.25 days) and a month a twelfth of it.
``m`` is refused as ambiguous (minute or month)."""

_DURATION = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*")


def parse_duration(text: str) -> float:
    """Seconds of one duration: a number and an optional unit of `UNITS` (``90``, ``1.5h``,
    ``1mo``; no unit is seconds); `ConfigError` if malformed, negative, infinite or in an
    unknown unit."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ConfigError(f"a time is a number and a unit ({', '.join(UNITS)}), e.g. 1h or "
                          f"1mo; got {text.strip()!r}")
    number, unit = float(match.group(1)), match.group(2) or "s"
    if unit == "m":
        raise ConfigError(f"time unit 'm' in {text.strip()!r} is ambiguous: write min (minutes) "
                          "or mo (months)")
    if unit not in UNITS:
        raise ConfigError(f"unknown time unit {unit!r} in {text.strip()!r}; units: "
                          f"{', '.join(UNITS)}")
    seconds = number * UNITS[unit]
    if not seconds >= 0 or math.isinf(seconds):
        raise ConfigError(f"a time since programming is finite and not negative; got "
                          f"{text.strip()!r}")
    return seconds


def parse_times(text: str, option: str = "--at") -> tuple[float, ...]:
    """Strictly increasing ages in seconds from comma-separated durations (`parse_duration`),
    e.g. ``"1h,1d,1w,1mo,1y"``; `ConfigError` (naming `option`) if one is bad or they do not
    increase."""
    items = [item.strip() for item in text.split(",")]
    try:
        times = tuple(parse_duration(item) for item in items)
    except ConfigError as error:
        raise ConfigError(f"{option}: {error}") from error
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise ConfigError(f"{option}: times must increase; {items[i]!r} does not come "
                              f"after {items[i - 1]!r}")
    return times


def format_duration(seconds: float | None) -> str:
    """`seconds` in the largest unit of `UNITS` that keeps it at least 1, as ``--at`` writes
    it (``3600`` -> ``1h``, ``31557600`` -> ``1y``); ``-`` for None."""
    if seconds is None:
        return "-"
    for unit in ("y", "mo", "w", "d", "h", "min"):
        if seconds >= UNITS[unit]:
            return f"{seconds / UNITS[unit]:.3g}{unit}"
    return f"{seconds:.3g}s"
