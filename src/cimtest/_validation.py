"""Parameter checks with one message shape: parameter, owner, what is allowed, what was given."""

from __future__ import annotations

import math
from collections.abc import Iterable

from cimtest.exceptions import ConfigError


def check_interval(
    name: str,
    value: float,
    low: float | None,
    high: float | None,
    owner: str,
    *,
    closed: str = "both",
) -> None:
    """Raise `ConfigError` unless ``low <= value <= high`` (ends open as `closed` says)."""
    lo_ok = low is None or (value >= low if closed in ("both", "left") else value > low)
    hi_ok = high is None or (value <= high if closed in ("both", "right") else value < high)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        lo_ok = False
    if not (lo_ok and hi_ok):
        left = "[" if closed in ("both", "left") else "("
        right = "]" if closed in ("both", "right") else ")"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ConfigError(
            f"The '{name}' parameter of {owner} must be in {left}{lo}, {hi}{right}; got {value!r}."
        )


def check_option(name: str, value: object, options: Iterable[object], owner: str) -> None:
    """Raise `ConfigError` unless `value` is one of `options`."""
    options = list(options)
    if value not in options:
        allowed = ", ".join(repr(o) for o in options)
        raise ConfigError(
            f"The '{name}' parameter of {owner} must be one of {allowed}; got {value!r}."
        )
