"""Each method's parameters are declared once (`_parameter_constraints`) and every declared
parameter refuses a value out of its range, through `set_params` and through `fit`, in one
line naming the method, the parameter, what is allowed and the value."""

from __future__ import annotations

import math
import re

import pytest

import cimtest.methods  # noqa: F401 (registers every method)
from cimtest._validation import Bounds, InstanceOf, Interval, Options, check_parameters
from cimtest.exceptions import ConfigError
from cimtest.methods.base import TestMethod, _param_names

METHODS = sorted(TestMethod._registry.values(), key=lambda cls: cls.name)


def bad_values(constraint, params: dict) -> list[object]:
    """Values `constraint` refuses for an object with `params`: beyond a bound, a fraction
    for an integer, a bool for a number, an unknown option, an object of another class, a
    reversed range."""
    if isinstance(constraint, Interval):
        low, high = (params[b] if isinstance(b, str) else b
                     for b in (constraint.low, constraint.high))
        values = [True, low - 1 if low is not None else high + 1 if high is not None
                  else math.nan]
        if constraint.integer:
            values.append((low if low is not None else 0) + 0.5)
        return values
    if isinstance(constraint, Options):
        return ["no-such-option", 1 if True in constraint.options else None]
    if isinstance(constraint, InstanceOf):
        return [3 if constraint.kind is str else "not-a-method"]
    assert isinstance(constraint, Bounds)
    return [(1.0, 0.0), (0.0, math.inf), (0.0,)]


CASES = [
    pytest.param(cls, name, value, id=f"{cls.name}-{name}-{value!r}")
    for cls in METHODS
    for name, declared in cls._parameter_constraints.items()
    for value in bad_values(next(c for c in (declared if isinstance(declared, list)
                                             else [declared]) if c is not None),
                            cls().get_params())
    if not (value is None and isinstance(declared, list) and None in declared)
]


@pytest.mark.parametrize("cls", METHODS, ids=lambda cls: cls.name)
def test_every_parameter_is_declared_once(cls):
    """The declaration names exactly the constructor's arguments, and the defaults follow it."""
    assert list(cls._parameter_constraints) == _param_names(cls)
    cls()._check_params()


@pytest.mark.parametrize("cls, name, value", CASES)
def test_a_value_out_of_range_is_refused_by_set_params_and_fit(cls, name, value,
                                                               tiny_classifier):
    model, _ = tiny_classifier
    message = re.escape(f"The '{name}' parameter of {cls.__name__} must be ")
    method = cls()
    before = method.get_params()
    with pytest.raises(ConfigError, match=message) as error:
        method.set_params(**{name: value})
    assert str(error.value).endswith(f"; got {value!r}.") and "\n" not in str(error.value)
    assert method.get_params() == before  # nothing changed
    with pytest.raises(ConfigError, match=message):
        cls(**{name: value}).fit(model)  # refused before any work, whatever fit needs


def test_a_bound_may_name_another_parameter_which_is_checked_first():
    declared = {"candidates": Interval("k", None, integer=True),
                "k": Interval(1, None, integer=True)}
    with pytest.raises(ConfigError, match=r"'candidates' parameter of T must be an integer in "
                                          r"\[4, inf\]; got 3\."):
        check_parameters("T", {"k": 4, "candidates": 3}, declared)
    with pytest.raises(ConfigError, match="'k' parameter"):  # k first, not candidates
        check_parameters("T", {"k": "4", "candidates": 3}, declared)
    allowed = {"rate": [Interval(0, 1, closed="neither"), None]}
    check_parameters("T", {"rate": None}, allowed)
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\) or None; got 1\.5\."):
        check_parameters("T", {"rate": 1.5}, allowed)
