"""The contract every test method follows: fit from the model, respond to chips, decide.

Modelled on scikit-learn's estimators: the constructor only stores its keyword arguments,
learned state ends in an underscore and is created only by `fit`, `get_params` reads the
constructor signature, and using a method before `fit` raises `NotFittedError`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from cimtest.exceptions import NotFittedError

__all__ = ["TestMethod", "check_is_fitted"]


class TestMethod(ABC):
    """Base of the test methods: ``fit(model)`` → ``respond(outputs)`` → ``decide(scores)``."""

    __test__ = False  # not a pytest test class despite the name

    @abstractmethod
    def fit(self, model: Any) -> TestMethod:
        """Learn the test from `model` (and whatever else the method needs); return self."""

    @abstractmethod
    def respond(self, outputs: Any) -> np.ndarray:
        """Turn chips' outputs on the test inputs into one score or signature per chip."""

    @abstractmethod
    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Turn scores into verdicts: bool of shape (n_chips,), True = flagged."""

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments as stored, by name (read from the signature)."""
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"


def check_is_fitted(method: TestMethod, attributes: tuple[str, ...] = ()) -> None:
    """Raise `NotFittedError` unless `method` has learned state (attributes ending in ``_``).

    Parameters
    ----------
    method : TestMethod
        The method about to be used.
    attributes : tuple of str
        Specific learned attributes to require; by default any attribute that ends in ``_``
        (and does not start with one) counts.
    """
    if attributes:
        fitted = all(hasattr(method, name) for name in attributes)
    else:
        fitted = any(k.endswith("_") and not k.startswith("_") for k in vars(method))
    if not fitted:
        raise NotFittedError(
            f"This {type(method).__name__} is not fitted yet; call fit(model) before using it."
        )
