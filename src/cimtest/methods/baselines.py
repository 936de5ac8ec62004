"""Baseline tests to weigh the papers' methods against, each a `TestMethod`.

- `PointTestVectors`: paper 1's point-estimate baseline, K real images and the σ_y rule
  with the ideal chip's σ_y as threshold;
- `FGSMTestImages`: adversarial images made from real seed images (Li et al., ICCD 2019);
  a chip fails when too many of its labels on them differ from the ideal chip's;
- `DatasetAwareTest`: K real images and a regressor of chip accuracy trained on the exact
  accuracies of the training chips (Ma et al., ITC 2022);
- `NoiseImagesTest` and `RandomSyntheticTest`: ablations of EGIS, K random noise images or
  K random synthetic images (no compaction), each with the EGIS detector.

Every ``propose`` draws from the test's own ``seed`` on its ``device``; nothing is learnt
from the data set beyond what ``needs`` declares.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from cimtest._device import DeviceLike, resolve_device
from cimtest._validation import SEED, Bounds, Constraints, InstanceOf, Interval, check_interval
from cimtest.data import Dataset
from cimtest.exceptions import ConfigError
from cimtest.methods._model import ideal_chip, resolve_model
from cimtest.methods.base import ChipOutcomes, TestMethod, check_is_fitted
from cimtest.methods.btv import spread
from cimtest.methods.detector import AccuracyRegressor, Detector
from cimtest.methods.egis import EntropyImageTest
from cimtest.methods.generator import default_range
from cimtest.methods.selection import check_differentiable
from cimtest.progress import Progress

__all__ = [
    "DatasetAwareTest",
    "FGSMTestImages",
    "NoiseImagesTest",
    "PointTestVectors",
    "RandomSyntheticTest",
]


class PointTestVectors(TestMethod):
    """K real images; a chip is flagged when its σ_y on them exceeds the ideal chip's.

    σ_y is paper 1's spread (RMS deviation of a chip's outputs from their mean), pooled
    over the K images as over the N samples of a Bayesian vector.

    Parameters
    ----------
    k : int
        Real images in the test.
    offset : float
        Added to the ideal chip's σ_y to give `threshold_`.
    seed : int
        Seeds the choice of the images.
    """

    name = "point-vectors"
    flag_word = "uncertain"
    needs = ("real images",)
    state = ("sigma_ideal_",)

    _parameter_constraints: ClassVar[Constraints] = {
        "k": Interval(1, None, integer=True),
        "offset": Interval(None, None),
        "seed": SEED,
    }

    def __init__(self, *, k: int = 4, offset: float = 0.0, seed: int = 0) -> None:
        self.k = k
        self.offset = offset
        self.seed = seed

    def propose(self, model, data: Dataset | None = None, *,
                progress: Progress | None = None, device: DeviceLike = None) -> torch.Tensor:
        """Pick K real images onto `device` (None: the CPU); measure the ideal chip's σ_y on
        them there."""
        self._check_params()
        where = resolve_device(device)
        module, _, _, _ = resolve_model(model)
        self.inputs_ = _real_images(data, self.k, self.seed, type(self).__name__, where)
        self._remember(model)
        population, _ = ideal_chip(module, self.seed, where)
        self.sigma_ideal_ = float(self.respond(population.outputs(self.inputs_))[0])
        self.threshold_ = self.sigma_ideal_ + float(self.offset)
        return self.inputs_

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """σ_y per chip, float64 (n,), from outputs (n, K, *out) on `inputs_`."""
        check_is_fitted(self, ("inputs_",))
        return spread(outputs.detach().double()).cpu().numpy()

    def score(self, features: np.ndarray) -> np.ndarray:
        """σ_y itself."""
        return np.asarray(features, dtype=np.float64)


class FGSMTestImages(TestMethod):
    """Adversarial test images near the ideal chip's decision boundaries (Li et al. 2019).

    Each of K real seed images x is moved along the sign of the gradient of the ideal chip's
    cross-entropy at its own label: ``x + step * eps_flip * sign(grad)``, where ``eps_flip``
    (found by bisection) is the smallest move that changes the ideal chip's label. The image
    keeps the ideal label but sits just short of the boundary, where small weight changes
    flip it. The response is the number of the K labels that differ from the ideal chip's;
    `learn` picks the count above which a chip fails, to best match the training labels.
    When no count does better than one answer for every chip (the images flip the labels of
    pass and fail chips alike), `separates_` is False and `describe` says so in a ``note``,
    which a comparison's row carries: the test then flags every chip or none.

    Parameters
    ----------
    k : int
        Test images.
    step : float
        Fraction of ``eps_flip`` to move, in (0, 1).
    seed : int
        Seeds the choice of the seed images.
    """

    name = "fgsm"
    needs = ("real images", "chip labels")
    state = ("eps_", "labels_", "separates_")

    _parameter_constraints: ClassVar[Constraints] = {
        "k": Interval(1, None, integer=True),
        "step": Interval(0, 1, closed="neither"),
        "seed": SEED,
    }

    def __init__(self, *, k: int = 4, step: float = 0.9, seed: int = 0) -> None:
        self.k = k
        self.step = step
        self.seed = seed

    def propose(self, model, data: Dataset | None = None, *,
                progress: Progress | None = None, device: DeviceLike = None) -> torch.Tensor:
        """Make the K adversarial images from K real seed images on `device` (None: the
        CPU)."""
        owner = type(self).__name__
        self._check_params()
        where = resolve_device(device)
        module, _, _, _ = resolve_model(model)
        seeds = _real_images(data, self.k, self.seed, owner, where)
        check_differentiable(module, seeds[:1], "FGSM test images")
        population, ideal = ideal_chip(module, self.seed, where)
        with torch.no_grad():
            labels = ideal(seeds).argmax(dim=1)
        x = seeds.clone().requires_grad_()
        F.cross_entropy(ideal(x), labels).backward()
        direction = x.grad.sign()
        self.eps_ = _flip_distance(ideal, seeds, direction, labels)
        moved = seeds + _per_input(self.step * self.eps_, seeds) * direction
        self.inputs_ = moved.detach()
        self.labels_ = population.outputs(self.inputs_)[0].argmax(dim=1)
        self._remember(model)
        return self.inputs_

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """Labels differing from the ideal chip's, float64 (n,), from outputs (n, K, M)."""
        check_is_fitted(self, ("labels_",))
        labels = self.labels_.to(outputs.device)
        return (outputs.argmax(dim=2) != labels).sum(dim=1).double().cpu().numpy()

    def learn(self, outputs: torch.Tensor, outcomes: ChipOutcomes, *,
              progress: Progress | None = None) -> FGSMTestImages:
        """The mismatch count above which a chip fails, best on the training labels, and
        whether it separates them: more chips right than one answer for all (`separates_`)."""
        counts, failed = self.respond(outputs), ~outcomes.passed
        self.threshold_ = best_threshold(counts, failed)
        right = int(((counts > self.threshold_) == failed).sum())
        self.separates_ = right > max(int(failed.sum()), int((~failed).sum()))
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        """The mismatch count."""
        return np.asarray(features, dtype=np.float64)

    def describe(self) -> dict[str, object]:
        """The base description, `separates_`, and a ``note`` when no count separates."""
        check_is_fitted(self, ("separates_",))
        described = {**super().describe(), "separates": self.separates_}
        if not self.separates_:
            described["note"] = ("no mismatch count separates the training chips better than "
                                 "one answer for all: it flags every chip or none")
        return described


class DatasetAwareTest(TestMethod):
    """K real images and a regressor of chip accuracy (Ma et al., ITC 2022).

    `propose` draws `candidates` real images; `learn` keeps the K whose ideal-class
    probability correlates most (in absolute value) with the training chips' accuracies,
    then trains a LightGBM regressor from the K images' outputs to the accuracy. A chip
    passes iff its predicted accuracy is above A_cutoff.

    Parameters
    ----------
    k : int
        Test images kept.
    candidates : int
        Real images measured on the training chips before choosing K.
    detector_estimators : int
        Boosting rounds of the regressor.
    seed : int
        Seeds the candidates and the regressor.
    """

    name = "dataset-aware"
    needs = ("real images", "chip accuracies")
    state = ("chosen_", "regressor_", "cutoff_accuracy_")

    _parameter_constraints: ClassVar[Constraints] = {
        "k": Interval(1, None, integer=True),
        "candidates": Interval("k", None, integer=True),
        "detector_estimators": Interval(1, None, integer=True),
        "seed": SEED,
    }

    def __init__(
        self, *, k: int = 4, candidates: int = 256, detector_estimators: int = 100, seed: int = 0
    ) -> None:
        self.k = k
        self.candidates = candidates
        self.detector_estimators = detector_estimators
        self.seed = seed

    def propose(self, model, data: Dataset | None = None, *,
                progress: Progress | None = None, device: DeviceLike = None) -> torch.Tensor:
        """Draw the candidate real images onto `device` (None: the CPU) and the ideal chip's
        labels on them there."""
        owner = type(self).__name__
        self._check_params()
        where = resolve_device(device)
        module, _, _, _ = resolve_model(model)
        n = min(self.candidates, 0 if data is None else len(data))
        self.candidates_ = _real_images(data, max(n, self.k), self.seed, owner, where)
        population, _ = ideal_chip(module, self.seed, where)
        self.ideal_labels_ = population.outputs(self.candidates_)[0].argmax(dim=1)
        self._remember(model)
        return self.candidates_

    def learn(self, outputs: torch.Tensor, outcomes: ChipOutcomes, *,
              progress: Progress | None = None) -> DatasetAwareTest:
        """Choose the K images and fit the regressor on the chips' exact accuracies."""
        if outcomes.accuracy is None:
            raise ConfigError("DatasetAwareTest needs the training chips' accuracies")
        check_is_fitted(self, ("candidates_",))
        probs = outputs.softmax(dim=2)
        labels = self.ideal_labels_.to(outputs.device).view(1, -1, 1)
        ideal_p = probs.gather(2, labels.expand(len(probs), -1, 1))
        ideal_share = ideal_p[..., 0].double().cpu().numpy()
        corr = np.nan_to_num(_correlation(ideal_share, outcomes.accuracy))
        self.chosen_ = np.sort(np.argsort(-np.abs(corr), kind="stable")[: self.k])
        self.inputs_ = self.candidates_[torch.as_tensor(self.chosen_)]
        features = _flatten(outputs[:, torch.as_tensor(self.chosen_)])
        self.regressor_ = AccuracyRegressor(n_estimators=self.detector_estimators,
                                            seed=self.seed).fit(features, outcomes.accuracy)
        self.cutoff_accuracy_ = float(outcomes.cutoff_accuracy)
        self.threshold_ = 0.0
        return self

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """Signatures, float64 (n, K*M), from outputs (n, K, M) on `inputs_`."""
        check_is_fitted(self, ("inputs_",))
        return _flatten(outputs)

    def score(self, features: np.ndarray) -> np.ndarray:
        """A_cutoff minus the predicted accuracy (points): flagged when positive."""
        predicted = self.predicted_accuracy(features)
        return self.cutoff_accuracy_ - predicted

    def predicted_accuracy(self, features: np.ndarray) -> np.ndarray:
        """The regressor's accuracy (percent) of each chip."""
        check_is_fitted(self, ("regressor_",))
        return self.regressor_.predict(features)

    def model_bytes(self) -> int:
        """Bytes of the regressor in LightGBM's text format."""
        check_is_fitted(self, ("regressor_",))
        return self.regressor_.size_bytes()


class _ImagesAndDetector(TestMethod):
    """K inputs chosen without looking at chips, and the EGIS detector on their signatures."""

    needs = ("chip labels",)
    state = ("detector_",)

    def learn(self, outputs: torch.Tensor, outcomes: ChipOutcomes, *,
              progress: Progress | None = None) -> _ImagesAndDetector:
        """Train the detector on the chips' signatures and pass/fail labels."""
        check_is_fitted(self, ("inputs_",))
        self.detector_ = Detector(n_estimators=self.detector_estimators,
                                  seed=self.seed).fit(self.respond(outputs), outcomes.passed)
        self.threshold_ = 0.5
        return self

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """Signatures, float64 (n, K*M), from outputs (n, K, M) on `inputs_`."""
        check_is_fitted(self, ("inputs_",))
        return _flatten(outputs)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Probability of fail: 1 - the detector's probability of pass."""
        check_is_fitted(self, ("detector_",))
        return 1.0 - self.detector_.probability(features)

    def model_bytes(self) -> int:
        """Bytes of the detector in LightGBM's text format."""
        check_is_fitted(self, ("detector_",))
        return self.detector_.size_bytes()


class NoiseImagesTest(_ImagesAndDetector):
    """Ablation: K uniform-noise images over the input range + the EGIS detector.

    Parameters
    ----------
    k : int
        Noise images.
    input_range : (float, float) or None
        Range of the noise; None: the digits range for zoo models, else (-1, 1).
    detector_estimators : int
        Boosting rounds of the detector.
    seed : int
        Seeds the noise and the detector.
    """

    name = "noise+detector"

    _parameter_constraints: ClassVar[Constraints] = {
        "k": Interval(1, None, integer=True),
        "input_range": [Bounds(), None],
        "detector_estimators": Interval(1, None, integer=True),
        "seed": SEED,
    }

    def __init__(
        self,
        *,
        k: int = 4,
        input_range: tuple[float, float] | None = None,
        detector_estimators: int = 100,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.input_range = input_range
        self.detector_estimators = detector_estimators
        self.seed = seed

    def propose(self, model, data: Dataset | None = None, *,
                progress: Progress | None = None, device: DeviceLike = None) -> torch.Tensor:
        """Draw the K noise images on `device` (None: the CPU); the model gives only the
        shape and range."""
        self._check_params()
        where = resolve_device(device)
        _, shape, _, own_data = resolve_model(model)
        low, high = self.input_range or default_range(own_data, shape)
        gen = torch.Generator(device=where).manual_seed(int(self.seed))
        self.inputs_ = low + (high - low) * torch.rand((self.k, *shape), generator=gen,
                                                       device=where)
        self._remember(model)
        return self.inputs_


class RandomSyntheticTest(_ImagesAndDetector):
    """Ablation: K random images of the EGIS synthetic set, no compaction, + the detector.

    Parameters
    ----------
    source : EntropyImageTest
        Where the synthetic image dataset comes from: its SID is reused if it already
        proposed one (as in a comparison), else its generator is trained here.
    k : int
        Images drawn at random from the SID.
    detector_estimators : int
        Boosting rounds of the detector.
    seed : int
        Seeds the draw and the detector.
    """

    name = "random-synthetic+detector"
    state = ("detector_", "chosen_")

    _parameter_constraints: ClassVar[Constraints] = {
        "source": [InstanceOf(EntropyImageTest), None],
        "k": Interval(1, None, integer=True),  # at most the SID's size: checked in propose
        "detector_estimators": Interval(1, None, integer=True),
        "seed": SEED,
    }

    def __init__(
        self,
        *,
        source: EntropyImageTest | None = None,
        k: int = 4,
        detector_estimators: int = 100,
        seed: int = 0,
    ) -> None:
        self.source = source
        self.k = k
        self.detector_estimators = detector_estimators
        self.seed = seed

    def propose(self, model, data: Dataset | None = None, *,
                progress: Progress | None = None, device: DeviceLike = None) -> torch.Tensor:
        """K random SID images on `device` (None: the CPU); the source's generator is
        trained first if needed."""
        self._check_params()
        where = resolve_device(device)
        source = self.source if self.source is not None else EntropyImageTest(seed=self.seed)
        sid = getattr(source, "sid_", None)
        sid = source.propose(model, device=where) if sid is None else sid.to(where)
        check_interval("k", self.k, 1, len(sid), type(self).__name__)
        gen = torch.Generator(device=where).manual_seed(int(self.seed))
        chosen = torch.randperm(len(sid), generator=gen, device=where)[: self.k].sort().values
        self.chosen_ = chosen.cpu().numpy()
        self.inputs_ = sid[chosen]
        self._remember(model)
        return self.inputs_


def best_threshold(scores: np.ndarray, failed: np.ndarray) -> float:
    """The threshold t (flag ``score > t``) that classifies the training chips best.

    Candidates are midpoints between distinct scores and one below the smallest; ties in
    accuracy go to the larger t (fewer flags).
    """
    scores = np.asarray(scores, dtype=np.float64)
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, values[-1:]])
    correct = [((scores > t) == failed).sum() for t in candidates]
    best = np.flatnonzero(np.asarray(correct) == max(correct))[-1]
    return float(candidates[best])


def _real_images(data: Dataset | None, k: int, seed: int, owner: str,
                 device: DeviceLike = None) -> torch.Tensor:
    """K images of `data` drawn without replacement by `seed` on `device` (None: the CPU),
    copied there from the data's tensor."""
    if data is None:
        raise ConfigError(f"{owner} needs real images: pass data=Dataset(...)")
    if k > len(data):
        raise ConfigError(f"{owner} needs {k} real images; the data has {len(data)}")
    where = resolve_device(device)
    gen = torch.Generator(device=where).manual_seed(int(seed))
    index = torch.randperm(len(data), generator=gen, device=where)[:k].sort().values
    return data.x[index.to(data.x.device)].to(where)


def _per_input(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`values` (N,) shaped to scale each of the inputs `x` (N, ...) of any rank."""
    return values.view(-1, *([1] * (x.dim() - 1)))


@torch.no_grad()
def _flip_distance(
    ideal: torch.nn.Module, x: torch.Tensor, direction: torch.Tensor, labels: torch.Tensor,
    iterations: int = 30,
) -> torch.Tensor:
    """Per image, the smallest step along `direction` that changes the ideal label (bisection).

    Images whose label does not change within a step of the input's full range keep that
    full step (they are far from every boundary along this direction).
    """
    width = float(x.max() - x.min()) or 1.0
    low = torch.zeros(len(x), device=x.device)
    high = torch.full((len(x),), width, device=x.device)
    for _ in range(iterations):
        mid = (low + high) / 2
        flipped = ideal(x + _per_input(mid, x) * direction).argmax(dim=1) != labels
        high = torch.where(flipped, mid, high)
        low = torch.where(flipped, low, mid)
    return high


def _correlation(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of `values` (D, N) with `target` (D,); NaN if flat
    (numpy's `corrcoef`, the last row of the (N + 1)² matrix)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(values, target, rowvar=False)[-1, :-1]


def _flatten(outputs: torch.Tensor) -> np.ndarray:
    return outputs.detach().double().reshape(outputs.shape[0], -1).cpu().numpy()
