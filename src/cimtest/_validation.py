"""Parameter checks with one message shape: parameter, owner, what is allowed, what was given."""

from __future__ import annotations

import math
import numbers
import re
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


MAX_SEED = 2**31 - 1
"""Largest seed the command line takes: seeds reach LightGBM, whose seed is a C int."""


def check_seed(value: object, name: str = "seed", high: int | None = None) -> int:
    """Return `value` if it is a seed: an integer from 0 (to `high`), else `ConfigError`.

    Chip ``i`` of a population is set by ``(seed, i)`` through numpy's `SeedSequence`, which
    takes non-negative integers only; a negative seed has no meaning and is refused.
    """
    valid = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0
    if not valid or (high is not None and value > high):
        bound = f"0 to {high}" if high is not None else "0 up"
        raise ConfigError(f"{name} must be an integer from {bound}; got {value!r}")
    return value


_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_memory(value: str | int) -> int:
    """Bytes of a memory budget given as an int or a string such as ``2GB``, ``512MiB``;
    `ConfigError` unless it is well formed and positive (light: the CLI checks --memory
    with it before loading anything)."""
    if isinstance(value, int) and not isinstance(value, bool):
        nbytes = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMG]?I?B?)\s*", value.upper())
        if not match or match.group(2) not in _UNITS:
            raise ConfigError(f"memory budget must look like 2GB or 512MiB; got {value!r}")
        nbytes = int(float(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise ConfigError(f"memory budget must look like 2GB or 512MiB; got {value!r}")
    if nbytes <= 0:
        raise ConfigError(f"memory budget must be positive; got {value!r}")
    return nbytes
