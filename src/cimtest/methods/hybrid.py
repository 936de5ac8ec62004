"""A test neither paper has: the EGIS detector fed with the K signatures AND the σ_y of the
Bayesian test vector, its threshold set for a target test escape rate.

Both parents are fitted first (EGIS from chip labels, the vector from the model alone); the
hybrid forwards the K compact images and the vector's stored sample, K + n_samples inputs.
The threshold on the probability of fail is chosen on out-of-fold predictions of the
training chips (`folds`-fold stratified cross-validation, `chip_folds`), so that the escapes
it would let through on chips it never saw stay at or below `target_te` percent of the chips.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from cimtest._device import DeviceLike, resolve_device
from cimtest._validation import SEED, Constraints, InstanceOf, Interval
from cimtest.exceptions import ConfigError
from cimtest.methods.base import ChipOutcomes, TestMethod, check_is_fitted
from cimtest.methods.btv import BayesianTestVector
from cimtest.methods.detector import Detector
from cimtest.methods.egis import EntropyImageTest
from cimtest.progress import Progress

__all__ = ["HybridTest", "chip_folds", "threshold_for_escapes"]


class HybridTest(TestMethod):
    """EGIS signatures + Bayesian σ_y → LightGBM detector, thresholded for a target TE.

    Parameters
    ----------
    egis : EntropyImageTest
        A fitted EGIS test (its K images are reused).
    btv : BayesianTestVector
        A fitted Bayesian test vector (its stored sample is reused).
    target_te : float
        Highest test escape rate (percent of all chips: fail chips called pass) allowed on
        the out-of-fold training predictions.
    folds : int
        Cross-validation folds for the out-of-fold probabilities.
    detector_estimators : int
        Boosting rounds of the detector.
    seed : int
        Seeds the folds and the detector.

    Attributes
    ----------
    detector_ : Detector
        Trained on all training chips.
    threshold_ : float
        Chips whose probability of fail is above it are flagged.
    oof_score_ : numpy.ndarray
        float64 (D,): out-of-fold probability of fail of each training chip.
    """

    name = "hybrid"
    needs = ("chip labels",)
    state = ("detector_", "oof_score_")
    parents = ("egis", "btv")

    _parameter_constraints: ClassVar[Constraints] = {
        "egis": [InstanceOf(EntropyImageTest), None],
        "btv": [InstanceOf(BayesianTestVector), None],
        "target_te": Interval(0, 100),
        "folds": Interval(2, None, integer=True),
        "detector_estimators": Interval(1, None, integer=True),
        "seed": SEED,
    }

    def __init__(
        self,
        *,
        egis: EntropyImageTest | None = None,
        btv: BayesianTestVector | None = None,
        target_te: float = 5.0,
        folds: int = 5,
        detector_estimators: int = 100,
        seed: int = 0,
    ) -> None:
        self.egis = egis
        self.btv = btv
        self.target_te = target_te
        self.folds = folds
        self.detector_estimators = detector_estimators
        self.seed = seed

    def propose(self, model=None, data=None, *, progress: Progress | None = None,
                device: DeviceLike = None) -> torch.Tensor:
        """The parents' test inputs on `device` (None: the CPU): K compact images, then the
        vector's sample."""
        owner = type(self).__name__
        self._check_params()
        if self.egis is None or self.btv is None:
            raise ConfigError(f"{owner} needs egis= and btv= (fitted parents)")
        check_is_fitted(self.egis, ("inputs_",))
        check_is_fitted(self.btv, ("inputs_",))
        where = resolve_device(device)
        self.inputs_ = torch.cat([self.egis.images_.to(where), self.btv.sample_.to(where)])
        self.input_shape_ = self.egis.input_shape_
        self.fingerprint_ = self.egis.fingerprint_
        self.model_ = getattr(self.egis, "model_", None)
        return self.inputs_

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """Features, float64 (n, K*M + 1): the EGIS signature and σ_y."""
        check_is_fitted(self, ("inputs_",))
        k = self.egis.k
        sigma = self.btv.respond(outputs[:, k:])
        return np.concatenate([self.egis.respond(outputs[:, :k]), sigma[:, None]], axis=1)

    def learn(self, outputs: torch.Tensor, outcomes: ChipOutcomes, *,
              progress: Progress | None = None) -> HybridTest:
        """Out-of-fold probabilities set the threshold; the detector is then fit on all chips."""
        features = self.respond(outputs)
        passed = outcomes.passed
        oof = np.empty(len(passed))
        for train, held in chip_folds(passed, self.folds, self.seed):
            oof[held] = 1.0 - self._detector().fit(features[train], passed[train]).probability(
                features[held])
        self.oof_score_ = oof
        self.threshold_ = threshold_for_escapes(oof, ~passed, self.target_te)
        self.detector_ = self._detector().fit(features, passed)
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """Probability of fail."""
        check_is_fitted(self, ("detector_",))
        return 1.0 - self.detector_.probability(features)

    def test_bytes(self) -> int:
        """The K images plus the Bayesian vector (mean and variance), float32."""
        return self.egis.test_bytes() + self.btv.test_bytes()

    def model_bytes(self) -> int:
        """Bytes of the detector in LightGBM's text format."""
        check_is_fitted(self, ("detector_",))
        return self.detector_.size_bytes()

    def _detector(self) -> Detector:
        return Detector(n_estimators=self.detector_estimators, seed=self.seed)


def chip_folds(passed: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, held-out) chip indices of each fold: `StratifiedKFold`, shuffled, seeded.

    Stratified so that every fold's detector learns from the pass/fail share of the whole
    population, as the final detector does (its probabilities are then on the same scale as
    the out-of-fold ones the threshold is read from), and no fold trains on one class.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(passed)), passed))


def threshold_for_escapes(scores: np.ndarray, failed: np.ndarray, target_te: float) -> float:
    """Largest t such that chips flagged by ``score > t`` leave at most `target_te` % escapes.

    An escape is a failed chip with ``score <= t``; the rate is over all chips. The largest
    such t flags the fewest chips (least yield loss) for the allowed escapes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    allowed = int(np.floor(target_te / 100.0 * scores.size + 1e-9))
    fail_scores = np.sort(scores[np.asarray(failed)])
    if allowed >= fail_scores.size:
        return float(scores.max())
    # at most `allowed` fail scores may lie at or below t: t just under the next fail score
    t = float(np.nextafter(fail_scores[allowed], -np.inf))
    return t
