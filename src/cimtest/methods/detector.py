"""The outlier detector of paper 2 §VI: gradient boosting (LightGBM) from a chip's signature
to pass/fail, stored in LightGBM's own text format (never pickled).

A signature is a chip's raw outputs (logits, before softmax) on the K compact images,
stacked into K x M features. The same class also scores candidate image sets during
compaction (the reward model of Algorithm 1), with fewer trees for speed.
"""

from __future__ import annotations

import logging

import numpy as np

from cimtest.exceptions import ArtifactError, ConfigError

__all__ = ["AccuracyRegressor", "Detector"]

_logger = logging.getLogger(__name__)


class Detector:
    """A LightGBM binary classifier: signature (K*M,) → pass (True) or fail (False).

    Parameters
    ----------
    n_estimators : int
        Boosting rounds.
    num_leaves : int
        Leaves per tree.
    learning_rate : float
        Shrinkage.
    min_child_samples : int
        Minimum chips per leaf (LightGBM's ``min_data_in_leaf``).
    seed : int
        LightGBM's seed; with one thread and ``deterministic`` the fit is reproducible.

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The trained model (after `fit` or `load`).
    """

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        num_leaves: int = 15,
        learning_rate: float = 0.1,
        min_child_samples: int = 10,
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.min_child_samples = min_child_samples
        self.seed = seed

    objective = "binary"

    def _params(self) -> dict[str, object]:
        return {
            "objective": self.objective,
            "num_leaves": int(self.num_leaves),
            "learning_rate": float(self.learning_rate),
            "min_data_in_leaf": int(self.min_child_samples),
            "seed": int(self.seed),
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }

    def _train(self, x: np.ndarray, y: np.ndarray) -> None:
        import lightgbm

        data = lightgbm.Dataset(x, label=y.astype(np.float64), params={"verbose": -1})
        self.booster_ = lightgbm.train(self._params(), data, num_boost_round=self.n_estimators)

    def size_bytes(self) -> int:
        """Bytes of the model in LightGBM's text format (what a tester stores)."""
        return len(self.to_string().encode())

    def fit(self, features: np.ndarray, passed: np.ndarray) -> Detector:
        """Train on signatures `features` (D, F) float and labels `passed` (D,) bool."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(passed)
        if y.dtype != np.bool_:
            raise ConfigError(f"detector labels must be bool (pass = True); got {y.dtype}")
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ConfigError(f"detector needs features (D, F) and labels (D,); got "
                              f"{x.shape} and {y.shape}")
        if y.all() or not y.any():
            raise ConfigError("detector needs both pass and fail chips among its labels")
        self._train(x, y)
        return self

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Probability of pass, float64 (n,), for signatures (n, F)."""
        return self._predict(features)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        if not hasattr(self, "booster_"):
            raise ConfigError("the detector is not trained; call fit or load first")
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.booster_.num_feature():
            raise ConfigError(f"detector expects signatures (n, {self.booster_.num_feature()}); "
                              f"got {x.shape}")
        return np.asarray(self.booster_.predict(x), dtype=np.float64)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Verdicts, bool (n,): True = pass (probability of pass above 0.5)."""
        return self.probability(features) > 0.5

    def to_string(self) -> str:
        """The booster in LightGBM's text format (what a test artefact stores)."""
        return self.booster_.model_to_string()

    @classmethod
    def from_string(cls, text: str) -> Detector:
        """A detector from LightGBM's text format (`to_string`); never unpickles."""
        import lightgbm

        try:
            booster = lightgbm.Booster(model_str=text)
        except lightgbm.basic.LightGBMError as exc:
            raise ArtifactError(f"not a LightGBM text model: {exc}") from exc
        detector = cls()
        detector.booster_ = booster
        return detector


class AccuracyRegressor(Detector):
    """LightGBM regression from a chip's signature to its accuracy (percent).

    The dataset-aware baseline (Ma et al., ITC 2022) learns it from the exact accuracies of
    the training chips; same parameters and text format as `Detector`.
    """

    objective = "regression"

    def fit(self, features: np.ndarray, accuracy: np.ndarray) -> AccuracyRegressor:
        """Train on signatures `features` (D, F) and accuracies `accuracy` (D,) float."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(accuracy, dtype=np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ConfigError(f"regressor needs features (D, F) and accuracies (D,); got "
                              f"{x.shape} and {y.shape}")
        self._train(x, y)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy, float64 (n,)."""
        return self._predict(features)
