"""The one contract every test method follows, in the spirit of scikit-learn's estimators.

The constructor only stores its keyword arguments; each class declares what they may be,
once, in `TestMethod._parameter_constraints`, checked by `fit` and `set_params`; learned state
ends in an underscore and is created only by `fit` (or `propose` + `learn`); `get_params` reads
the constructor signature, so `sklearn.base.clone` copies a method; using a method before it is
fitted raises `NotFittedError`. Every method is used the same way:

- ``fit(model, chips, outcomes, data, progress=...)``: propose inputs, measure the training
  chips on them (methods that learn from chips), learn; return self;
- ``respond(outputs) → features``, ``score(features) → float64``, ``decide(features) → bool``;
  every method decides alike, ``score > threshold_`` (its rule or detector sets `threshold_`),
  whether the outputs come from a simulated chip or were recorded on a bench;
- ``describe()`` and ``figures()``: what a report or an exported manifest shows of the test;
- ``save(path)`` and ``TestMethod.load(path)``: one safetensors artefact per test.

`propose` and `learn` are `fit` in two halves, so that a comparison can run ONE campaign over
the training chips for every method's inputs.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import torch

from cimtest._device import DeviceLike, resolve_device
from cimtest._validation import Constraints, check_parameters
from cimtest.exceptions import ConfigError, NotFittedError
from cimtest.progress import Progress, staged

__all__ = ["ChipOutcomes", "Chips", "Need", "TestMethod", "check_is_fitted", "chips_device"]

Need = Literal["real images", "chip labels", "chip accuracies"]
"""What a test needs besides the model."""


class Chips(Protocol):
    """The D training chips as a method sees them: their count and their outputs on inputs
    (a `cimtest.engine.Population`, or `cimtest.engine.StoredChips` to keep them in a store);
    a ``device`` attribute, where they have one, is where the methods fit (`chips_device`)."""

    n: int

    def outputs(self, x: torch.Tensor, *, progress: Progress | None = None) -> torch.Tensor: ...

    def recipe(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class ChipOutcomes:
    """What is known of the D training chips: pass/fail, and their accuracies if allowed.

    Attributes
    ----------
    passed : numpy.ndarray
        bool (D,): True = the chip passes.
    cutoff_accuracy : float or None
        A_cutoff (percent) that made the labels, when known.
    accuracy : numpy.ndarray or None
        float64 (D,) exact accuracies, only for tests that need them (``"chip accuracies"``
        in `TestMethod.needs`); `TestMethod.fit` hides them from the others.
    cutoff : str or None
        Name of the rule that made the labels (e.g. ``"A50"``), kept as metadata.
    """

    passed: np.ndarray
    cutoff_accuracy: float | None = None
    accuracy: np.ndarray | None = None
    cutoff: str | None = None

    def __post_init__(self) -> None:
        passed = self.passed.cpu().numpy() if isinstance(self.passed, torch.Tensor) else self.passed
        passed = np.asarray(passed)
        if passed.dtype != np.bool_ or passed.ndim != 1:
            raise ConfigError(f"chip outcomes take pass/fail labels as bool of shape (D,); got "
                              f"{passed.dtype} {passed.shape}")
        if passed.all() or not passed.any():
            raise ConfigError("the training chips must include both pass and fail chips")
        object.__setattr__(self, "passed", passed.copy())
        if self.accuracy is not None:
            accuracy = np.asarray(self.accuracy, dtype=np.float64)
            if accuracy.shape != passed.shape:
                raise ConfigError("ChipOutcomes.accuracy must have one value per chip")
            object.__setattr__(self, "accuracy", accuracy)

    def labels_only(self) -> ChipOutcomes:
        """The same outcomes without the accuracies."""
        return ChipOutcomes(self.passed, self.cutoff_accuracy, None, self.cutoff)

    def known_to(self, method: TestMethod) -> ChipOutcomes:
        """What `method` may see: the accuracies only if it declares it needs them."""
        return self if "chip accuracies" in method.needs else self.labels_only()


class TestMethod(ABC):
    """Base of every test method: ``fit`` → ``respond`` → ``score`` / ``decide``; ``save``."""

    __test__ = False  # not a pytest test class despite the name

    name: ClassVar[str]
    """Tag of the method's artefacts, e.g. ``"btv"``."""

    needs: ClassVar[tuple[Need, ...]] = ()
    """What the test needs besides the model."""

    state: ClassVar[tuple[str, ...]] = ()
    """Learned attributes `save` writes (besides ``inputs_``, ``threshold_`` and the model's
    shape, fingerprint and reference)."""

    flag_word: ClassVar[str] = "fail"
    """What a flagged chip is called in verdicts: ``"fail"``, or ``"uncertain"`` for tests
    that flag a spread rather than predict an accuracy."""

    parents: ClassVar[tuple[str, ...]] = ()
    """Parameters holding fitted methods this one is built on: proposed after them and saved
    with it."""

    _parameter_constraints: ClassVar[Constraints] = {}
    """Every constructor argument and what it may be: a constraint of `cimtest._validation`
    (``Interval(1, None, integer=True)``, ``Options(("mean", "sum"))``...) or a list of them,
    ``None`` among them when None is allowed. `_check_params` checks them all, with one
    message shape (parameter, method, what is allowed, the value)."""

    _registry: ClassVar[dict[str, type[TestMethod]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "decide" in cls.__dict__:
            raise TypeError(f"{cls.__name__} overrides decide: every test decides score > "
                            "threshold_; set threshold_ (and score) instead")
        if "name" in cls.__dict__:
            TestMethod._registry[cls.name] = cls

    # -- the contract -------------------------------------------------------------------

    def fit(
        self,
        model: Any,
        chips: Chips | None = None,
        outcomes: ChipOutcomes | None = None,
        data: Any = None,
        *,
        progress: Progress | None = None,
        device: DeviceLike = None,
    ) -> TestMethod:
        """Propose inputs from `model` (and `data` for tests that need real images); for
        tests that learn from chips, measure `chips` on them and learn from `outcomes`; on
        the chips' device (`chips_device`), else on `device`.

        Parameters
        ----------
        model : LoadedModel or torch.nn.Module
            The float model (a module needs an ``input_shape`` attribute).
        chips : Chips, optional
            The D training chips (a `Population`); needed when `needs` names chip labels.
        outcomes : ChipOutcomes, optional
            Their pass/fail labels (and accuracies, shown only to tests that need them).
        data : Dataset, optional
            Real images, for tests that need them.
        progress : Progress, optional
            ``progress(done, total, stage)``.
        device : str or torch.device, optional
            Where a test fits without chips (`cimtest._device.resolve_device`; None: the
            CPU); with `chips`, their device, and another one is refused.
        """
        self._check_params()
        learns = "chip labels" in self.needs or "chip accuracies" in self.needs
        if learns and (chips is None or outcomes is None):
            raise ConfigError(f"{type(self).__name__} learns from chips: pass chips= (the D "
                              "training chips) and outcomes= (their ChipOutcomes)")
        if learns and not isinstance(outcomes, ChipOutcomes):
            raise ConfigError("outcomes= must be ChipOutcomes(passed=bool labels, ...); got "
                              f"{type(outcomes).__name__}")
        if learns and len(outcomes.passed) != chips.n:
            raise ConfigError(f"{chips.n} chips but {len(outcomes.passed)} outcomes")
        where = resolve_device(device)
        if chips is not None:
            found = chips_device(chips)
            if device is not None and where != found:
                raise ConfigError(f"device={str(where)!r} but the chips are on {str(found)!r}: "
                                  "a test fits on its chips' device")
            where = found
        candidates = self.propose(model, data, progress=progress, device=where)
        if not learns:
            return self
        outputs = chips.outputs(candidates, progress=staged(progress, "chips"))
        self.attach_chips(chips)
        self.learn(outputs, outcomes.known_to(self), progress=progress)
        self.training_ = {**chips.recipe(), "cutoff": outcomes.cutoff,
                          "passed": int(outcomes.passed.sum())}
        return self

    @abstractmethod
    def propose(self, model: Any, data: Any = None, *, progress: Progress | None = None,
                device: DeviceLike = None) -> torch.Tensor:
        """Candidate inputs (N, *input_shape) to measure the training chips on, made on
        `device` (None: the CPU), where they are returned."""

    def attach_chips(self, chips: Chips) -> None:
        """Called with the training chips just before `learn` (by `fit` and by
        `cimtest.report.compare`). Methods that differentiate through the chips' weights
        (`cimtest.methods.learned`) keep their recipe here, since `learn` sees only their
        outputs; every other method ignores it."""

    def learn(self, outputs: torch.Tensor, outcomes: ChipOutcomes, *,
              progress: Progress | None = None) -> TestMethod:
        """Fit the decision from the training chips' outputs (D, N, *out) on `propose`'s
        inputs. Tests that learn nothing from chips (thresholds from the ideal chip) keep it."""
        check_is_fitted(self, ("threshold_",))
        return self

    @abstractmethod
    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """Features of each chip from its outputs (n, len(inputs_), *out) on `inputs_`."""

    @abstractmethod
    def score(self, features: np.ndarray) -> np.ndarray:
        """float64 (n,): higher means more likely to fail."""

    def predicted_accuracy(self, features: np.ndarray) -> np.ndarray | None:
        """Each chip's predicted accuracy (percent), float64 (n,), for tests that predict it
        (an accuracy regressor); None for tests that predict pass/fail only."""
        return None

    def decide(self, features: np.ndarray) -> np.ndarray:
        """Verdicts, bool (n,): True = flagged, ``score > threshold_``; the one decision of
        every method (subclasses may not override it)."""
        check_is_fitted(self, ("threshold_",))
        return np.asarray(self.score(features), dtype=np.float64) > float(self.threshold_)

    def describe(self) -> dict[str, Any]:
        """What a report or an exported manifest shows of the fitted test, JSON-ready: the
        decision (threshold, flag word), the inputs' count and shape; subclasses add their
        curves and choices."""
        check_is_fitted(self, ("inputs_", "threshold_"))
        return {"method": self.name, "decision": "score > threshold",
                "threshold": float(self.threshold_), "flag_word": self.flag_word,
                "inputs": len(self.inputs_), "input_shape": list(self.input_shape_)}

    def figures(self) -> dict[str, torch.Tensor]:
        """Tensors a report draws, by name (e.g. the EGIS images); none by default."""
        return {}

    def test_bytes(self) -> int:
        """Bytes a tester stores for the test inputs (float32)."""
        check_is_fitted(self, ("inputs_",))
        return int(self.inputs_.numel()) * 4

    def model_bytes(self) -> int:
        """Bytes of the learned decision model a tester stores beside the inputs (0: none)."""
        return 0

    def save(self, path: str | Path, info: dict[str, object] | None = None) -> Path:
        """Write the fitted test as one safetensors artefact (atomic); return the path.

        `info` adds JSON metadata, read back as `saved_info_` (e.g. the cutoff).
        """
        from cimtest.methods.persistence import save_method

        return save_method(self, path, info or {})

    @classmethod
    def load(
        cls, path: str | Path, fingerprint: str | None = None, *, force: bool = False
    ) -> TestMethod:
        """Read a test written by `save`: of this class (or any, from `TestMethod`).

        Raises `ArtifactError` if the file is missing, corrupt or edited, holds another
        method, or was made for a model other than `fingerprint` (unless `force`).
        """
        from cimtest.methods.persistence import load_method

        return load_method(cls, path, fingerprint, force=force)

    # -- scikit-learn conventions ------------------------------------------------------

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor's arguments as stored, by name (read from the signature).

        With ``deep=True``, also the parameters of each argument that is itself a method,
        as ``name__param`` (scikit-learn's convention: ``egis__k``). The default is
        ``deep=False`` so that ``type(m)(**m.get_params())`` rebuilds a method;
        `sklearn.base.clone` asks for ``deep=False`` itself.
        """
        params = {name: getattr(self, name) for name in _param_names(type(self))}
        if deep:
            for name, value in list(params.items()):
                if isinstance(value, TestMethod):
                    params.update({f"{name}__{key}": inner
                                   for key, inner in value.get_params(deep=True).items()})
        return params

    def set_params(self, **params: Any) -> TestMethod:
        """Set constructor arguments (``name=value``, or ``parent__name=value`` on a method
        held as an argument) and return self, as scikit-learn's ``set_params`` does.

        The values are checked as the constructor's arguments are (`_check_params`); on a bad
        value nothing is changed. Raises `ConfigError` for an unknown name (naming the valid
        ones), a ``__`` name on an argument that is not a method, or a value out of range.
        """
        valid = self.get_params(deep=False)
        owner = type(self).__name__
        own: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, inner = key.partition("__")
            if name not in valid:
                raise ConfigError(f"{owner} has no parameter {name!r}; its parameters: "
                                  f"{', '.join(valid)}")
            if sep and not isinstance(valid[name], TestMethod):
                raise ConfigError(f"{owner}.{name} is not a test method, so {key!r} names "
                                  "nothing")
            if sep:
                nested.setdefault(name, {})[inner] = value
            else:
                own[name] = value
        for name, value in own.items():
            setattr(self, name, value)
        try:
            self._check_params()
            for name, inner in nested.items():
                getattr(self, name).set_params(**inner)
        except ConfigError:
            for name in own:
                setattr(self, name, valid[name])
            raise
        return self

    def _check_params(self) -> None:
        """Raise `ConfigError` for the first constructor argument that breaks its declaration
        in `_parameter_constraints` (`fit`, `propose` and `set_params` call it). A subclass
        whose arguments also follow a rule across several of them checks it after this."""
        check_parameters(type(self).__name__, self.get_params(), self._parameter_constraints)

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"

    def fitted_parents(self) -> dict[str, TestMethod]:
        """The fitted methods this one is built on, by parameter name."""
        return {name: getattr(self, name) for name in self.parents}

    def _remember(self, model: Any) -> None:
        """Record the model's input shape, fingerprint and how to load it again."""
        from cimtest.methods._model import model_reference, resolve_model

        _, shape, fingerprint, _ = resolve_model(model)
        self.input_shape_ = shape
        self.fingerprint_ = fingerprint
        self.model_ = model_reference(model)


def _param_names(cls: type) -> list[str]:
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def chips_device(chips: Chips) -> torch.device:
    """The device of `chips`: their ``device`` attribute (a `Population`'s, `StoredChips`'),
    else the CPU."""
    return resolve_device(getattr(chips, "device", None))


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
