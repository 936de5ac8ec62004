"""The contract every test method follows: fit from the model, respond to chips, decide.

Modelled on scikit-learn's estimators: the constructor only stores its keyword arguments,
learned state ends in an underscore and is created only by `fit`, `get_params` reads the
constructor signature, and using a method before `fit` raises `NotFittedError`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from cimtest.exceptions import ConfigError, NotFittedError

__all__ = ["ChipOutcomes", "ScreeningTest", "TestMethod", "check_is_fitted"]


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


@dataclass(frozen=True)
class ChipOutcomes:
    """What is known of the D training chips: pass/fail, and their accuracies if allowed.

    Attributes
    ----------
    passed : numpy.ndarray
        bool (D,): True = the chip's accuracy is above `cutoff_accuracy`.
    cutoff_accuracy : float
        A_cutoff (percent) that made the labels.
    accuracy : numpy.ndarray or None
        float64 (D,) exact accuracies, only for tests that need them (``"chip accuracies"``
        in `ScreeningTest.needs`); None hides them from the others.
    """

    passed: np.ndarray
    cutoff_accuracy: float
    accuracy: np.ndarray | None = None

    def __post_init__(self) -> None:
        passed = np.asarray(self.passed)
        if passed.dtype != np.bool_ or passed.ndim != 1:
            raise ConfigError(f"ChipOutcomes.passed must be bool of shape (D,); got "
                              f"{passed.dtype} {passed.shape}")
        if passed.all() or not passed.any():
            raise ConfigError("the training chips must include both pass and fail chips")
        object.__setattr__(self, "passed", passed)
        if self.accuracy is not None:
            accuracy = np.asarray(self.accuracy, dtype=np.float64)
            if accuracy.shape != passed.shape:
                raise ConfigError("ChipOutcomes.accuracy must have one value per chip")
            object.__setattr__(self, "accuracy", accuracy)

    def labels_only(self) -> ChipOutcomes:
        """The same outcomes without the accuracies."""
        return ChipOutcomes(self.passed, self.cutoff_accuracy)


class ScreeningTest(TestMethod):
    """A pass/fail screen fitted in two steps, so that a comparison can share one campaign.

    `propose` picks the inputs to measure training chips on (from the model, and real images
    for tests that need them); `learn` fits the decision from those chips' outputs and
    `ChipOutcomes`. Afterwards `inputs_` holds what each chip forwards at test time,
    `respond` turns outputs on `inputs_` into features, `score` into one number per chip
    (higher = more likely to fail, for ROC curves), and `decide` into verdicts.
    """

    needs: ClassVar[tuple[str, ...]] = ()
    """What the test needs besides the model: ``"real images"``, ``"chip labels"``,
    ``"chip accuracies"``."""

    @abstractmethod
    def propose(self, model: Any, data: Any = None) -> torch.Tensor:
        """Candidate inputs (N, *input_shape) to measure the training chips on."""

    @abstractmethod
    def learn(self, outputs: torch.Tensor, chips: ChipOutcomes) -> ScreeningTest:
        """Fit the decision from the training chips' outputs (D, N, *out) on `propose`'s inputs."""

    @abstractmethod
    def score(self, features: np.ndarray) -> np.ndarray:
        """float64 (n,): higher means more likely to fail."""

    def fit(self, model: Any, population: Any, chips: ChipOutcomes, data: Any = None):
        """Propose inputs, measure `population` (the D training chips) on them, learn."""
        if len(chips.passed) != population.n:
            raise ConfigError(f"{population.n} chips but {len(chips.passed)} outcomes")
        candidates = self.propose(model, data)
        return self.learn(population.outputs(candidates), chips)

    def decide(self, features: np.ndarray) -> np.ndarray:
        """Verdicts, bool (n,): True = flagged (score above the learnt `threshold_`)."""
        check_is_fitted(self, ("threshold_",))
        return self.score(features) > self.threshold_

    def test_bytes(self) -> int:
        """Bytes a tester stores for the test inputs (float32)."""
        check_is_fitted(self, ("inputs_",))
        return int(self.inputs_.numel()) * 4


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
