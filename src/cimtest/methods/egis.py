"""Entropy-guided image synthesis (EGIS, paper 2): a dataset-agnostic pass/fail test.

From the model alone and the pass/fail labels of D simulated chips (never their accuracies,
never real images), `EntropyImageTest.fit`

(a) trains a generator on the ideal chip (`cimtest.methods.generator`, paper Table I and
    eq. 3, 5);
(b) draws the synthetic image dataset (SID) of N images from seeded latents;
(c) measures every training chip's raw outputs (logits, before softmax: the paper's
    signature) on all N images once, through the batched engine;
(d) keeps K images by simulated annealing (Algorithm 1, `cimtest.methods.compaction`);
(e) trains the LightGBM detector on the K images' signatures of all D chips.

The paper's "images" are inputs of the model's own shape: (F) features, (C, L) sequences
or (C, H, W) images, each made by the generator adapted to that rank (`EGISGenerator`).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import torch

from cimtest._device import DeviceLike, resolve_device
from cimtest._validation import SEED, Bounds, Constraints, Interval, Options
from cimtest.exceptions import ConfigError
from cimtest.loading import LoadedModel
from cimtest.methods._model import ideal_chip, resolve_model
from cimtest.methods.base import ChipOutcomes, TestMethod, check_is_fitted
from cimtest.methods.compaction import SignatureReward, anneal
from cimtest.methods.detector import Detector
from cimtest.methods.generator import EGISGenerator, default_range, entropies, train_generator
from cimtest.progress import Progress, report

__all__ = ["GENERATOR_PARAMS", "EntropyImageTest"]

_logger = logging.getLogger(__name__)

PROPOSAL = ("sid_", "entropy_curve_", "sid_entropy_", "input_shape_", "fingerprint_")
"""What `EntropyImageTest.propose` learns: the SID and how the generator got there."""

GENERATOR_PARAMS = ("sid_size", "steps", "lr", "batch", "input_range")
"""The parameters the SID depends on (with the seed)."""


class EntropyImageTest(TestMethod):
    """The EGIS test: K synthetic images and a gradient-boosting pass/fail detector.

    Parameters
    ----------
    k : int
        Images in the compact image set (paper: 2-16).
    sid_size : int
        N, images in the synthetic image dataset (paper: 2048).
    steps : int
        Adam steps of the generator (paper: 5000).
    lr : float
        Adam learning rate (paper: 3e-4).
    batch : int
        Latents per generator step (B).
    input_range : (float, float) or None
        Normalised input range the images are mapped into; None: the digits range for zoo
        models (`LoadedModel.dataset`), else (-1, 1).
    t_init, t_final, rho : float
        Annealing schedule (paper: 2.0, 0.03, 0.98).
    splits : int
        I, train/validation splits per reward.
    resplit : bool
        True (paper, Algorithm 1 line 16): I new splits at every annealing iteration. False:
        I splits drawn once and shared by every set, rewards cached per set (the earlier
        behaviour, kept to compare best reward against evaluation TA).
    reward_estimators : int
        Boosting rounds of each reward classifier.
    detector_estimators : int
        Boosting rounds of the final detector.
    seed : int
        Seeds the generator, the SID latents, the annealing and the classifiers.

    Attributes
    ----------
    images_ : torch.Tensor
        float32 (K, *input_shape_): the compact image set.
    chosen_ : numpy.ndarray
        int64 (K,): their indices in the SID.
    sid_ : torch.Tensor
        float32 (N, *input_shape_): the synthetic image dataset.
    entropy_curve_ : numpy.ndarray
        float64 (steps, 2): H_c and H_s at each generator step (paper Fig. 3).
    sid_entropy_ : (float, float)
        H_c and H_s of the ideal chip on the whole SID.
    reward_curve_ : numpy.ndarray
        float64 (iterations, 3): temperature, new reward, best reward (paper Fig. 4a).
    best_reward_ : float
        Best mean validation accuracy (percent) of the annealing.
    detector_ : Detector
        The LightGBM detector on the K images' signatures.
    training_ : dict
        The training chips' recipe (`Population.recipe`), cutoff name and pass count.
    input_shape_, output_shape_ : tuple of int
        Shapes of one input and one output.
    fingerprint_ : str
        Fingerprint of the model.
    model_ : dict or None
        How to load the model again (`cimtest.loading.LoadedModel.reference`); None when
        proposed on a bare module.
    """

    name = "egis"
    needs = ("chip labels",)
    state = ("chosen_", "detector_", "output_shape_", "best_reward_",
             "reward_curve_", "entropy_curve_", "sid_entropy_", "training_")

    _parameter_constraints: ClassVar[Constraints] = {
        "k": Interval(1, "sid_size", closed="left", integer=True),
        "sid_size": Interval(2, None, integer=True),
        "steps": Interval(1, None, integer=True),
        "lr": Interval(0, None, closed="right"),
        "batch": Interval(2, None, integer=True),
        "input_range": [Bounds(), None],
        "t_init": Interval(0, None, closed="neither"),
        "t_final": Interval(0, "t_init", closed="neither"),
        "rho": Interval(0, 1, closed="neither"),
        "splits": Interval(1, None, integer=True),
        "resplit": Options((False, True)),
        "reward_estimators": Interval(1, None, integer=True),
        "detector_estimators": Interval(1, None, integer=True),
        "seed": SEED,
    }

    def __init__(
        self,
        *,
        k: int = 4,
        sid_size: int = 2048,
        steps: int = 200,
        lr: float = 3e-4,
        batch: int = 64,
        input_range: tuple[float, float] | None = None,
        t_init: float = 2.0,
        t_final: float = 0.03,
        rho: float = 0.98,
        splits: int = 3,
        resplit: bool = True,
        reward_estimators: int = 30,
        detector_estimators: int = 100,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.sid_size = sid_size
        self.steps = steps
        self.lr = lr
        self.batch = batch
        self.input_range = input_range
        self.t_init = t_init
        self.t_final = t_final
        self.rho = rho
        self.splits = splits
        self.resplit = resplit
        self.reward_estimators = reward_estimators
        self.detector_estimators = detector_estimators
        self.seed = seed

    def propose(
        self,
        model: LoadedModel | torch.nn.Module,
        data: object = None,
        *,
        progress: Progress | None = None,
        device: DeviceLike = None,
    ) -> torch.Tensor:
        """Train the generator on the ideal chip of `model` on `device` (None: the CPU);
        return the SID (N, *input_shape) there.

        Uses the model only (`data` is ignored: EGIS never sees real images). The generator's
        initial weights are drawn on the CPU (the same on every device), then moved.
        """
        self._check_params()
        where = resolve_device(device)
        module, shape, _, own_data = resolve_model(model)
        low_high = self.input_range
        if low_high is None:
            low_high = default_range(own_data, shape)
        gen = torch.Generator(device=where).manual_seed(int(self.seed))
        _, ideal = ideal_chip(module, self.seed, where)
        with torch.random.fork_rng():  # the init draws from the global generator: seed a fork
            torch.manual_seed(int(self.seed))
            generator = EGISGenerator(shape, tuple(float(v) for v in low_high)).to(where)
        self.entropy_curve_ = train_generator(generator, ideal, self.steps, self.lr,
                                              self.batch, gen, progress)
        generator.eval()
        with torch.no_grad():
            latents = torch.randn(self.sid_size, generator.latent_dim, generator=gen,
                                  device=where)
            sid = torch.cat([generator(z) for z in latents.split(256)])
            h_c, h_s = entropies(ideal(sid).reshape(self.sid_size, -1))
        self.sid_entropy_ = (float(h_c), float(h_s))
        self.sid_ = sid
        self._remember(model)
        self.training_ = {}
        return sid

    def sharing_proposal(self, k: int) -> EntropyImageTest:
        """A copy with K = `k` that shares this test's generator results (SID, entropy curve),
        ready to `learn`: the tests of several K from one generator and one campaign."""
        return type(self)(**{**self.get_params(), "k": k}).adopt_proposal(self)

    def adopt_proposal(self, other: EntropyImageTest) -> EntropyImageTest:
        """Take `other`'s SID and entropy curve, and the generator parameters that made them,
        instead of training a generator (`propose`); return self, ready to `learn`."""
        check_is_fitted(other, PROPOSAL)
        for name in GENERATOR_PARAMS:
            setattr(self, name, getattr(other, name))
        for name in PROPOSAL:
            setattr(self, name, getattr(other, name))
        self.model_ = getattr(other, "model_", None)
        self.training_ = {}
        self._check_params()
        return self

    def learn(
        self,
        outputs: torch.Tensor,
        outcomes: ChipOutcomes,
        *,
        progress: Progress | None = None,
    ) -> EntropyImageTest:
        """Compaction and detector from the D chips' outputs (D, N, *out) on the SID.

        Only ``outcomes.passed`` is read (EGIS never sees accuracies).
        """
        check_is_fitted(self, ("sid_",))
        passed = np.asarray(outcomes.passed)
        if outputs.shape[:2] != (len(passed), self.sid_size):
            raise ConfigError(f"learn needs outputs of shape ({len(passed)}, {self.sid_size}, "
                              f"...) on the SID; got {tuple(outputs.shape)}")
        signatures = outputs.reshape(outputs.shape[0], outputs.shape[1], -1).cpu().numpy()
        reward = SignatureReward(signatures, passed, splits=self.splits,
                                 n_estimators=self.reward_estimators, resplit=self.resplit,
                                 seed=self.seed)
        report(progress, 0, 0, "compaction")
        result = anneal(reward, self.sid_size, self.k, t_init=self.t_init,
                        t_final=self.t_final, rho=self.rho, seed=self.seed,
                        cache=not self.resplit, progress=progress)
        self.chosen_ = result.best
        self.reward_curve_ = result.reward_curve
        self.best_reward_ = result.best_reward
        features = signatures[:, result.best, :].reshape(len(passed), -1)
        self.detector_ = Detector(n_estimators=self.detector_estimators,
                                  seed=self.seed).fit(features, passed)
        self.inputs_ = self.sid_[torch.as_tensor(result.best, device=self.sid_.device)].clone()
        self.threshold_ = 0.5
        self.output_shape_ = tuple(outputs.shape[2:])
        return self

    @property
    def images_(self) -> torch.Tensor:
        """The compact image set (K, *input_shape_): what a chip forwards (`inputs_`)."""
        check_is_fitted(self, ("inputs_",))
        return self.inputs_

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """Signatures: each chip's outputs on the K images stacked, float64 (n_chips, K*M).

        Parameters
        ----------
        outputs : torch.Tensor
            float32 (n_chips, K, M): raw outputs (logits) on `images_`, in order (what
            ``Population.outputs(test.images_)`` returns).
        """
        check_is_fitted(self, ("inputs_",))
        if outputs.dim() < 3 or outputs.shape[1] != self.k:
            raise ConfigError(f"respond needs outputs of shape (n_chips, {self.k}, M); got "
                              f"{tuple(outputs.shape)}")
        return outputs.detach().double().reshape(outputs.shape[0], -1).cpu().numpy()

    def score(self, signatures: np.ndarray) -> np.ndarray:
        """Probability of fail, float64 (n_chips,): 1 - the detector's probability of pass."""
        check_is_fitted(self, ("detector_",))
        return 1.0 - self.detector_.probability(signatures)

    def describe(self) -> dict[str, Any]:
        """The base description, with the generator's and the annealing's curves."""
        check_is_fitted(self, ("detector_",))
        return {**super().describe(), "entropy_curve": np.asarray(self.entropy_curve_).tolist(),
                "sid_entropy": list(self.sid_entropy_),
                "reward_curve": np.asarray(self.reward_curve_).tolist(),
                "best_reward": float(self.best_reward_),
                "chosen": np.asarray(self.chosen_).tolist()}

    def figures(self) -> dict[str, torch.Tensor]:
        """The K chosen images."""
        return {"images": self.images_}

    def model_bytes(self) -> int:
        """Bytes of the detector in LightGBM's text format."""
        check_is_fitted(self, ("detector_",))
        return self.detector_.size_bytes()
