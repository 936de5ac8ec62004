"""Parameter checks with one message shape: parameter, owner, what is allowed, what was given.

A class declares its parameters once, as scikit-learn's ``_parameter_constraints`` does: a
mapping from each parameter to a constraint (`Interval`, `Options`, `InstanceOf`, `Bounds`),
or a list of them, ``None`` among them when None is allowed. `check_parameters` checks a set
of values against such a declaration; `check_interval` and `check_option` check one value.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from cimtest.exceptions import ConfigError

Closed = Literal["both", "left", "right", "neither"]
"""Which ends of an `Interval` belong to it."""


@dataclass(frozen=True)
class Interval:
    """Real numbers from `low` to `high` (None: unbounded), ends closed as `closed` says;
    integers only if `integer`. A bound given as a string is the value of that other
    parameter of the same object (``candidates`` at least ``k``)."""

    low: float | str | None
    high: float | str | None
    closed: Closed = "both"
    integer: bool = False

    def allows(self, value: object, params: Mapping[str, object]) -> bool:
        """True if `value` is in the interval (bools and NaN never are)."""
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or math.isnan(value):
            return False
        low, high = self._bound(self.low, params), self._bound(self.high, params)
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        return ((low is None or (value >= low if left else value > low))
                and (high is None or (value <= high if right else value < high)))

    def describe(self, params: Mapping[str, object]) -> str:
        """``in [1, inf)``, or ``an integer in [1, inf)``."""
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low, high = self._bound(self.low, params), self._bound(self.high, params)
        lo = "-inf" if low is None else _number(low)
        hi = "inf" if high is None else _number(high)
        return f"{'an integer in' if self.integer else 'in'} {left}{lo}, {hi}{right}"

    def references(self) -> tuple[str, ...]:
        """The other parameters its bounds name."""
        return tuple(b for b in (self.low, self.high) if isinstance(b, str))

    @staticmethod
    def _bound(bound: float | str | None, params: Mapping[str, object]) -> float | None:
        return params[bound] if isinstance(bound, str) else bound


@dataclass(frozen=True)
class Options:
    """One of a few values; a bool matches a bool only (``1`` is not ``True``)."""

    options: tuple[object, ...]

    def allows(self, value: object, params: Mapping[str, object]) -> bool:
        """True if `value` is one of the options."""
        return any(_same(value, option) for option in self.options)

    def describe(self, params: Mapping[str, object]) -> str:
        """``one of 'mean', 'sum'``."""
        return f"one of {', '.join(repr(o) for o in self.options)}"


@dataclass(frozen=True)
class InstanceOf:
    """An instance of a class (e.g. a fitted parent method)."""

    kind: type

    def allows(self, value: object, params: Mapping[str, object]) -> bool:
        """True if `value` is an instance of `kind`."""
        return isinstance(value, self.kind)

    def describe(self, params: Mapping[str, object]) -> str:
        """``a EntropyImageTest``."""
        return f"a {self.kind.__name__}"


@dataclass(frozen=True)
class Bounds:
    """A range ``(low, high)``: two finite numbers, low < high."""

    def allows(self, value: object, params: Mapping[str, object]) -> bool:
        """True if `value` is a pair of finite numbers in increasing order."""
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return False
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                   and math.isfinite(v) for v in value):
            return False
        return value[0] < value[1]

    def describe(self, params: Mapping[str, object]) -> str:
        """The rule in words."""
        return "a pair (low, high) of finite numbers with low < high"


Constraint = Interval | Options | InstanceOf | Bounds
"""One rule a parameter's value may follow."""

Constraints = dict[str, Constraint | list[Constraint | None]]
"""A class's declaration: each parameter's constraint, or a list of them (``None``: None is
allowed)."""


def check_parameters(
    owner: str,
    params: Mapping[str, object],
    constraints: Constraints,
) -> None:
    """Raise `ConfigError` for the first value of `params` that follows none of its
    declared `constraints` (``None`` in a list: None is allowed), naming the parameter,
    `owner`, what is allowed and the value. Parameters whose bounds name no other parameter
    are checked first, so that a bound is checked before it is used."""
    order = sorted(constraints, key=lambda name: any(
        isinstance(c, Interval) and c.references() for c in _as_list(constraints[name])))
    for name in order:
        allowed, value = _as_list(constraints[name]), params[name]
        if value is None and None in allowed:
            continue
        rules = [c for c in allowed if c is not None]
        if not any(rule.allows(value, params) for rule in rules):
            words = [rule.describe(params) for rule in rules]
            words += ["None"] if None in allowed else []
            raise ConfigError(f"The '{name}' parameter of {owner} must be "
                              f"{' or '.join(words)}; got {value!r}.")


def check_interval(
    name: str,
    value: float,
    low: float | None,
    high: float | None,
    owner: str,
    *,
    closed: Closed = "both",
) -> None:
    """Raise `ConfigError` unless ``low <= value <= high`` (ends open as `closed` says)."""
    check_parameters(owner, {name: value}, {name: Interval(low, high, closed)})


def check_option(name: str, value: object, options: Iterable[object], owner: str) -> None:
    """Raise `ConfigError` unless `value` is one of `options`."""
    check_parameters(owner, {name: value}, {name: Options(tuple(options))})


def _as_list(declared: Constraint | list[Constraint | None]) -> list[Constraint | None]:
    return declared if isinstance(declared, list) else [declared]


def _same(value: object, option: object) -> bool:
    """`value` equals `option` and is a bool exactly when the option is."""
    if isinstance(value, bool) != isinstance(option, bool):
        return False
    try:
        return bool(value == option)
    except (TypeError, ValueError):  # e.g. an array compared with a number
        return False


def _number(bound: float) -> str:
    return str(bound) if isinstance(bound, numbers.Integral) else f"{bound:g}"


MAX_SEED = 2**31 - 1
"""Largest seed the command line takes: seeds reach LightGBM, whose seed is a C int."""

SEED = Interval(0, MAX_SEED, integer=True)
"""A method's ``seed``: what numpy's `SeedSequence` and LightGBM both take."""


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
