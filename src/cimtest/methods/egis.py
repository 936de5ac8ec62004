"""Entropy-guided image synthesis (EGIS, paper 2): a dataset-agnostic pass/fail test.

From the model alone and the pass/fail labels of D simulated chips (never their accuracies,
never real images), `EntropyImageTest.fit`

(a) trains a generator (paper Table I) so that the ideal chip's predictions on its images
    have a low mean per-image entropy H_c and a high entropy H_s of the batch-mean
    prediction: loss ``-exp(H_s - H_c)`` (paper eq. 3, 5), Adam;
(b) draws the synthetic image dataset (SID) of N images from seeded latents;
(c) computes every training chip's raw outputs (logits, before softmax: the paper's
    signature) on all N images once, through the batched engine;
(d) keeps K images by simulated annealing (Algorithm 1, `cimtest.methods.compaction`);
(e) trains the LightGBM detector on the K images' signatures of all D chips.

Generator adaptation to the model's input (C, H, W): let S = max(H, W) rounded up to a power
of two. Layer 1 maps the latent (100) to a 2x2 map of 256 channels (kernel 2); layers 2-4
(256→128→64→32) and the output layer 5 (32→C) each double the side (kernel 4, stride 2)
while it is below S and keep it (kernel 3, stride 1, padding 1) once S is reached; for
S > 32 extra 32-channel doubling layers (with BN + ReLU) precede layer 5. BN + ReLU follow
every hidden layer, tanh the output. For 32x32 inputs this is Table I exactly, with C output
channels in layer 5 (Table I's "32" cannot be an image); for 8x8 digits layers 2-3 double
and 4-5 keep the side. Non-square or non-power-of-two sizes are resized bilinearly to
(H, W). The tanh output is mapped affinely onto the
model's normalised input range (`cimtest.zoo.dcgan.ToInputRange`).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cimtest._atomic import atomic_directory
from cimtest._validation import check_interval
from cimtest.artifacts import Artifact, load_artifact, save_artifact
from cimtest.engine import BaseStore, Campaign, Population
from cimtest.exceptions import ArtifactError, ConfigError
from cimtest.loading import LoadedModel
from cimtest.methods._model import ideal_chip, model_reference, resolve_model
from cimtest.methods.base import ChipOutcomes, ScreeningTest, check_is_fitted
from cimtest.methods.compaction import SignatureReward, anneal
from cimtest.methods.detector import Detector
from cimtest.zoo.dcgan import LATENT_DIM, ToInputRange

__all__ = [
    "ARTIFACT_FILE",
    "DETECTOR_FILE",
    "FALLBACK_RANGE",
    "GENERATOR_PARAMS",
    "METHOD",
    "EGISGenerator",
    "EntropyImageTest",
    "LabelledChips",
    "chip_signatures",
    "default_range",
    "egis_loss",
    "entropies",
]

_logger = logging.getLogger(__name__)

METHOD = "egis"
"""The ``method`` tag of EGIS test artefacts."""

ARTIFACT_FILE = "test.safetensors"
"""The K images and metadata inside a TESTDIR."""

DETECTOR_FILE = "detector.txt"
"""The detector (LightGBM text format) inside a TESTDIR."""

FALLBACK_RANGE = (-1.0, 1.0)
"""The input range of a model whose range is not known (tanh's own)."""

_WIDTHS = (256, 128, 64, 32)

_PROPOSAL = ("sid_", "entropy_curve_", "sid_entropy_", "input_shape_", "fingerprint_")
"""What `EntropyImageTest.propose` learns: the SID and how the generator got there."""

GENERATOR_PARAMS = ("images", "steps", "lr", "batch", "input_range")
"""The parameters the SID depends on (with the seed)."""
"""Output channels of Table I's layers 1-4."""


def entropies(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """H_c and H_s of paper 2 eq. 3 and 5 from a batch of logits (natural log).

    Parameters
    ----------
    logits : torch.Tensor
        float (B, M): raw outputs; softmax is applied here.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Scalars: H_c, the mean over the batch of each prediction's entropy (0 when every
        prediction is one-hot), and H_s, the entropy of the batch-mean prediction (log M
        when the batch is balanced over the M classes).
    """
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    h_c = -(p * log_p).sum(dim=1).mean()
    mean_p = p.mean(dim=0)
    h_s = -(mean_p * torch.log(mean_p.clamp_min(1e-30))).sum()
    return h_c, h_s


def egis_loss(logits: torch.Tensor) -> torch.Tensor:
    """The generator's loss ``-exp(H_s - H_c)`` (paper 2 §IV-B); minimum -M."""
    h_c, h_s = entropies(logits)
    return -torch.exp(h_s - h_c)


class EGISGenerator(nn.Module):
    """Latent (B, 100) → images (B, C, H, W) in ``input_range`` (paper 2 Table I, adapted).

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W) of one model input.
    input_range : (float, float)
        (low, high) of a normalised pixel; tanh's [-1, 1] is mapped onto it.
    latent_dim : int
        Length of the latent (paper: 100).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        input_range: tuple[float, float] = (-1.0, 1.0),
        latent_dim: int = LATENT_DIM,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"EGIS needs image inputs (C, H, W); got {tuple(input_shape)}")
        channels, height, width = (int(v) for v in input_shape)
        side = max(2, 1 << math.ceil(math.log2(max(height, width))))
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, _WIDTHS[0], 2, 1, 0, bias=False)]
        layers += [nn.BatchNorm2d(_WIDTHS[0]), nn.ReLU()]
        doublings = int(math.log2(side)) - 1  # from the 2x2 map of layer 1 to side x side
        hidden = list(_WIDTHS[1:]) + [_WIDTHS[-1]] * max(0, doublings - len(_WIDTHS))
        size, width_in = 2, _WIDTHS[0]
        for out in hidden:
            layers += [_upsample(width_in, out, size < side), nn.BatchNorm2d(out), nn.ReLU()]
            size, width_in = min(2 * size, side), out
        layers += [_upsample(width_in, channels, size < side), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.to_range = ToInputRange(*input_range)
        self.input_shape = (channels, height, width)
        self.latent_dim = latent_dim
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents (B, latent_dim) to images (B, C, H, W)."""
        t = self.net(z.reshape(z.shape[0], -1, 1, 1))
        if tuple(t.shape[2:]) != self.input_shape[1:]:
            t = F.interpolate(t, size=self.input_shape[1:], mode="bilinear", align_corners=False)
        return self.to_range(t)


def _upsample(c_in: int, c_out: int, double: bool) -> nn.ConvTranspose2d:
    """Kernel 4 stride 2 (doubles the side) or kernel 3 stride 1 (keeps it)."""
    if double:
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
    return nn.ConvTranspose2d(c_in, c_out, 3, 1, 1, bias=False)


def _init(model: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@dataclass(frozen=True)
class LabelledChips:
    """The D known chips EGIS learns from: how to rebuild them, and pass/fail ONLY.

    Holds the population's recipe (fault spec, seed, count, crossbar geometry) so that the
    fit can simulate the chips' outputs on synthetic images, and one bool per chip. Float
    labels (accuracies, probabilities) are refused, and there is no field for real images:
    the fit can learn nothing from the data set.

    Attributes
    ----------
    fault : str
        Fault spec of the population, e.g. ``"egis-typical:sigma=0.15"``.
    seed : int
        Population seed (chip i is fully set by (seed, i)).
    labels : torch.Tensor
        bool (n,): True = the chip passes.
    cutoff : str or None
        Name of the rule that made the labels (e.g. ``"A50"``), kept as metadata only.
    array_size : (int, int) or None
        Crossbar array size of the chips.
    bits_per_cell : int
        Bits per memristive cell.
    """

    fault: str
    seed: int
    labels: torch.Tensor
    cutoff: str | None = None
    array_size: tuple[int, int] | None = None
    bits_per_cell: int = 1

    def __post_init__(self) -> None:
        labels = self.labels
        if isinstance(labels, np.ndarray):
            if labels.dtype != np.bool_:
                raise ConfigError(f"LabelledChips takes pass/fail labels (bool) only; got "
                                  f"{labels.dtype} (accuracies are not allowed)")
            labels = torch.from_numpy(labels.copy())
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.bool:
            kind = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ConfigError(f"LabelledChips takes pass/fail labels as a bool tensor only; "
                              f"got {kind} (accuracies are not allowed)")
        if labels.dim() != 1 or labels.numel() < 2:
            raise ConfigError(f"LabelledChips needs labels of shape (n,), n >= 2; got "
                              f"{tuple(labels.shape)}")
        if not isinstance(self.fault, str):
            raise ConfigError("LabelledChips.fault must be a fault spec string")
        object.__setattr__(self, "labels", labels.clone())

    @property
    def n(self) -> int:
        """Number of chips D."""
        return int(self.labels.numel())

    def population(self, module: nn.Module, memory: str | int = "2GB") -> Population:
        """The chips as a `Population` of `module`."""
        return Population(module, self.fault, self.seed, self.n, array_size=self.array_size,
                          bits_per_cell=self.bits_per_cell, memory=memory)

    def as_dict(self) -> dict[str, object]:
        """JSON view of the recipe (without the labels) plus the pass count."""
        return {"fault": self.fault, "seed": self.seed, "n": self.n, "cutoff": self.cutoff,
                "array_size": None if self.array_size is None else list(self.array_size),
                "bits_per_cell": self.bits_per_cell, "passed": int(self.labels.sum())}


class EntropyImageTest(ScreeningTest):
    """The EGIS test: K synthetic images and a gradient-boosting pass/fail detector.

    Parameters
    ----------
    k : int
        Images in the compact image set (paper: 2-16).
    images : int
        N, images in the synthetic image dataset (paper: 2048).
    steps : int
        Adam steps of the generator (paper: 5000).
    lr : float
        Adam learning rate (paper: 3e-4).
    batch : int
        Latents per generator step (B).
    input_range : (float, float) or None
        Normalised input range the images are mapped into; None: the digits range for zoo
        models (`LoadedModel.data_size`), else (-1, 1).
    t_init, t_final, rho : float
        Annealing schedule (paper: 2.0, 0.03, 0.98).
    splits : int
        I, train/validation splits per reward.
    reward_estimators : int
        Boosting rounds of each reward classifier.
    detector_estimators : int
        Boosting rounds of the final detector.
    memory : str
        Working-set budget of one chunk of chips in the signature campaign.
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
        The labelled chips' recipe (`LabelledChips.as_dict`).
    input_shape_, output_shape_ : tuple of int
        Shapes of one input and one output.
    fingerprint_ : str
        Fingerprint of the model.
    model_ : dict or None
        How to load the model again (`cimtest.loading.LoadedModel.reference`); None when
        proposed on a bare module.
    """

    needs = ("chip labels",)

    def __init__(
        self,
        *,
        k: int = 4,
        images: int = 2048,
        steps: int = 200,
        lr: float = 3e-4,
        batch: int = 64,
        input_range: tuple[float, float] | None = None,
        t_init: float = 2.0,
        t_final: float = 0.03,
        rho: float = 0.98,
        splits: int = 3,
        reward_estimators: int = 30,
        detector_estimators: int = 100,
        memory: str = "2GB",
        seed: int = 0,
    ) -> None:
        self.k = k
        self.images = images
        self.steps = steps
        self.lr = lr
        self.batch = batch
        self.input_range = input_range
        self.t_init = t_init
        self.t_final = t_final
        self.rho = rho
        self.splits = splits
        self.reward_estimators = reward_estimators
        self.detector_estimators = detector_estimators
        self.memory = memory
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_interval("k", self.k, 1, None, owner)
        check_interval("images", self.images, 2, None, owner)
        if self.k >= self.images:
            raise ConfigError(f"{owner} needs k < images; got k={self.k}, images={self.images}")
        check_interval("steps", self.steps, 1, None, owner)
        check_interval("lr", self.lr, 0, None, owner, closed="right")
        check_interval("batch", self.batch, 2, None, owner)
        check_interval("splits", self.splits, 1, None, owner)
        check_interval("reward_estimators", self.reward_estimators, 1, None, owner)
        check_interval("detector_estimators", self.detector_estimators, 1, None, owner)

    def fit(
        self,
        model: LoadedModel | nn.Module,
        chips: LabelledChips,
        *,
        store: BaseStore | None = None,
        progress: Callable[[str, int, int, str], None] | None = None,
    ) -> EntropyImageTest:
        """Learn the compact images and the detector from `model` and the chips' labels.

        Parameters
        ----------
        model : LoadedModel or torch.nn.Module
            The float model (quantised into chips, never changed); a module needs an
            ``input_shape`` attribute.
        chips : LabelledChips
            The D known chips: their recipe and pass/fail labels only.
        store : BaseStore, optional
            Where the signature campaign keeps the chips' outputs (`chip_signatures`).
        progress : callable, optional
            ``progress(stage, done, total, note)`` for the stages ``"generator"``,
            ``"signatures"`` and ``"compaction"``.

        Returns
        -------
        self
        """
        if not isinstance(chips, LabelledChips):
            raise ConfigError("EntropyImageTest.fit takes the chips as LabelledChips "
                              f"(pass/fail labels only); got {type(chips).__name__}")
        outcomes = ChipOutcomes(chips.labels.numpy(), float("nan"))  # labels only
        sid = self.propose(model, progress=progress)
        module, _, _, _ = resolve_model(model)
        signatures = chip_signatures(chips.population(module, self.memory), sid, store=store,
                                     progress=progress)
        self.learn(signatures, outcomes, progress=progress)
        self.training_ = chips.as_dict()
        return self

    def propose(
        self,
        model: LoadedModel | nn.Module,
        data: object = None,
        *,
        progress: Callable[[str, int, int, str], None] | None = None,
    ) -> torch.Tensor:
        """Train the generator on the ideal chip of `model`; return the SID (N, C, H, W).

        Uses the model only (`data` is ignored: EGIS never sees real images).
        """
        self._check_params()
        module, shape, fingerprint, data_size = resolve_model(model)
        low_high = self.input_range
        if low_high is None:
            low_high = default_range(data_size)
        report = progress or (lambda *a: None)
        gen = torch.Generator().manual_seed(int(self.seed))
        _, ideal = ideal_chip(module, self.seed)
        with torch.random.fork_rng():  # the init draws from the global generator: seed a fork
            torch.manual_seed(int(self.seed))
            generator = EGISGenerator(shape, tuple(float(v) for v in low_high))
        self.entropy_curve_ = _train_generator(generator, ideal, self.steps, self.lr,
                                               self.batch, gen, report)
        generator.eval()
        with torch.no_grad():
            latents = torch.randn(self.images, generator.latent_dim, generator=gen)
            sid = torch.cat([generator(z) for z in latents.split(256)])
            h_c, h_s = entropies(ideal(sid).reshape(self.images, -1))
        self.sid_entropy_ = (float(h_c), float(h_s))
        self.sid_ = sid
        self.input_shape_ = shape
        self.fingerprint_ = fingerprint
        self.model_ = model_reference(model)
        self.training_ = {}
        return sid

    def sharing_proposal(self, k: int) -> EntropyImageTest:
        """A copy with K = `k` that shares this test's generator results (SID, entropy curve),
        ready to `learn`: the tests of several K from one generator and one campaign."""
        return type(self)(**{**self.get_params(), "k": k}).adopt_proposal(self)

    def adopt_proposal(self, other: EntropyImageTest) -> EntropyImageTest:
        """Take `other`'s SID and entropy curve, and the generator parameters that made them,
        instead of training a generator (`propose`); return self, ready to `learn`."""
        check_is_fitted(other, _PROPOSAL)
        for name in GENERATOR_PARAMS:
            setattr(self, name, getattr(other, name))
        for name in _PROPOSAL:
            setattr(self, name, getattr(other, name))
        self.model_ = getattr(other, "model_", None)
        self.training_ = {}
        self._check_params()
        return self

    def learn(
        self,
        outputs: torch.Tensor,
        chips: ChipOutcomes,
        *,
        progress: Callable[[str, int, int, str], None] | None = None,
    ) -> EntropyImageTest:
        """Compaction and detector from the D chips' outputs (D, N, *out) on the SID.

        Only ``chips.passed`` is read (EGIS never sees accuracies).
        """
        check_is_fitted(self, ("sid_",))
        passed = np.asarray(chips.passed)
        if outputs.shape[:2] != (len(passed), self.images):
            raise ConfigError(f"learn needs outputs of shape ({len(passed)}, {self.images}, "
                              f"...) on the SID; got {tuple(outputs.shape)}")
        report = progress or (lambda *a: None)
        signatures = outputs.reshape(outputs.shape[0], outputs.shape[1], -1).numpy()
        reward = SignatureReward(signatures, passed, splits=self.splits,
                                 n_estimators=self.reward_estimators, seed=self.seed)
        report("compaction", 0, 0, "")
        result = anneal(reward, self.images, self.k, t_init=self.t_init, t_final=self.t_final,
                        rho=self.rho, seed=self.seed,
                        progress=lambda i, n, t, b: report("compaction", i, n,
                                                           f"T {t:.3f} best {b:.2f}"))
        self.chosen_ = result.best
        self.reward_curve_ = result.reward_curve
        self.best_reward_ = result.best_reward
        features = signatures[:, result.best, :].reshape(len(passed), -1)
        self.detector_ = Detector(n_estimators=self.detector_estimators,
                                  seed=self.seed).fit(features, passed)
        self.images_ = self.sid_[torch.as_tensor(result.best)].clone()
        self.inputs_ = self.images_
        self.threshold_ = 0.5
        self.output_shape_ = tuple(outputs.shape[2:])
        return self

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """Signatures: each chip's outputs on the K images stacked, float64 (n_chips, K*M).

        Parameters
        ----------
        outputs : torch.Tensor
            float32 (n_chips, K, M): raw outputs (logits) on `images_`, in order (what
            ``Population.outputs(test.images_)`` returns).
        """
        check_is_fitted(self, ("images_",))
        if outputs.dim() < 3 or outputs.shape[1] != self.k:
            raise ConfigError(f"respond needs outputs of shape (n_chips, {self.k}, M); got "
                              f"{tuple(outputs.shape)}")
        return outputs.detach().double().reshape(outputs.shape[0], -1).numpy()

    def score(self, signatures: np.ndarray) -> np.ndarray:
        """Probability of fail, float64 (n_chips,): 1 - the detector's probability of pass."""
        check_is_fitted(self, ("detector_",))
        return 1.0 - self.detector_.probability(signatures)

    def decide(self, signatures: np.ndarray) -> np.ndarray:
        """Verdicts, bool (n_chips,): True = flagged (predicted fail), as every method."""
        check_is_fitted(self, ("detector_",))
        return ~self.detector_.predict(signatures)

    def save(self, testdir: str | Path, info: dict[str, object] | None = None) -> Path:
        """Write TESTDIR (``test.safetensors`` + ``detector.txt``) atomically; return it.

        The files go to a temporary directory beside `testdir` that is renamed onto it, so
        a crash never leaves half a test. `info` adds JSON metadata (e.g. the cutoff).
        """
        check_is_fitted(self, ("detector_",))
        testdir = Path(testdir)
        if not testdir.parent.is_dir():
            raise ArtifactError(f"folder '{testdir.parent}' does not exist")
        try:
            with atomic_directory(testdir) as tmp:
                detector = self.detector_.save(tmp / DETECTOR_FILE)
                save_artifact(tmp / ARTIFACT_FILE, self._artifact(_sha256(detector), info or {}))
        except OSError as exc:
            raise ArtifactError(f"cannot write test '{testdir}': {exc}") from exc
        _logger.info("saved EGIS test (K=%d) to %s", self.k, testdir)
        return testdir

    def _artifact(self, detector_sha256: str, info: dict[str, object]) -> Artifact:
        params = {k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in self.get_params().items()}
        return Artifact(
            method=METHOD,
            tensors={"images": self.images_},
            params=params,
            thresholds={"probability": 0.5},
            input_shape=self.input_shape_,
            fingerprint=self.fingerprint_,
            model=getattr(self, "model_", None),
            info={**info, "k": self.k, "chosen": [int(i) for i in self.chosen_],
                  "training": self.training_, "output_shape": list(self.output_shape_),
                  "best_reward": self.best_reward_, "sid_entropy": list(self.sid_entropy_),
                  "detector_sha256": detector_sha256},
        )

    @classmethod
    def from_params(cls, params: dict[str, object]) -> EntropyImageTest:
        """An unfitted test from parameters read back from JSON (lists become tuples)."""
        params = dict(params)
        if params.get("input_range") is not None:
            params["input_range"] = tuple(params["input_range"])
        return cls(**params)

    @classmethod
    def load(
        cls, testdir: str | Path, expected_fingerprint: str | None = None, *, force: bool = False
    ) -> tuple[EntropyImageTest, dict[str, object]]:
        """Read TESTDIR: the test (ready to respond and decide) and its metadata ``info``.

        Raises
        ------
        ArtifactError
            If a file is missing or corrupt, the artefact is not an EGIS test, the detector
            is not the one saved with it, or the fingerprint differs (unless `force`).
        """
        testdir = Path(testdir)
        if not testdir.is_dir():
            raise ArtifactError(f"EGIS test '{testdir}' is not a directory")
        artifact = load_artifact(testdir / ARTIFACT_FILE, expected_fingerprint, force=force)
        if artifact.method != METHOD:
            raise ArtifactError(f"'{testdir}' holds a {artifact.method} test, not {METHOD}")
        detector_path = testdir / DETECTOR_FILE
        if not detector_path.is_file():
            raise ArtifactError(f"detector '{detector_path}' does not exist")
        if _sha256(detector_path) != artifact.info.get("detector_sha256"):
            raise ArtifactError(f"'{detector_path}' is not the detector saved with this test "
                                "(its sha256 differs from the one recorded in "
                                f"{ARTIFACT_FILE}): it was edited or replaced; refit the test")
        test = cls.from_params(artifact.params)
        test.images_ = artifact.tensors["images"]
        test.inputs_ = test.images_
        test.threshold_ = 0.5
        test.chosen_ = np.asarray(artifact.info["chosen"], dtype=np.int64)
        test.detector_ = Detector.load(detector_path)
        test.input_shape_ = tuple(artifact.input_shape)
        test.output_shape_ = tuple(artifact.info["output_shape"])
        test.fingerprint_ = artifact.fingerprint
        test.model_ = artifact.model
        test.training_ = artifact.info["training"]
        test.best_reward_ = float(artifact.info["best_reward"])
        return test, artifact.info


def _train_generator(
    generator: EGISGenerator,
    ideal: nn.Module,
    steps: int,
    lr: float,
    batch: int,
    gen: torch.Generator,
    report: Callable[[str, int, int, str], None],
) -> np.ndarray:
    """Adam on ``-exp(H_s - H_c)``; returns float64 (steps, 2) of (H_c, H_s) per step."""
    optimiser = torch.optim.Adam(generator.parameters(), lr=lr)
    curve = np.empty((steps, 2), dtype=np.float64)
    generator.train()
    for step in range(steps):
        z = torch.randn(batch, generator.latent_dim, generator=gen)
        logits = ideal(generator(z)).reshape(batch, -1)
        h_c, h_s = entropies(logits)
        loss = -torch.exp(h_s - h_c)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        curve[step] = (h_c.item(), h_s.item())
        report("generator", step + 1, steps, f"H_c {curve[step, 0]:.3f} H_s {curve[step, 1]:.3f}")
    _logger.info("egis generator: H_c %.3f -> %.3f, H_s %.3f -> %.3f in %d steps",
                 curve[0, 0], curve[-1, 0], curve[0, 1], curve[-1, 1], steps)
    return curve


def chip_signatures(
    population: Population,
    sid: torch.Tensor,
    *,
    store: BaseStore | None = None,
    progress: Callable[[str, int, int, str], None] | None = None,
) -> torch.Tensor:
    """Every chip's raw outputs on every SID image, once: float32 (D, N, M).

    Runs as a `Campaign` that keeps the outputs, labelled with the ideal chip's classes on
    the SID (so the store's ``accuracy`` column is each chip's agreement with the ideal
    chip, in percent). With an on-disk `store` the outputs are cached in its side files: a
    killed fit resumes, and a second fit on the same chips and SID reads them back.
    """
    ideal = population.with_faults("none", n=1)
    labels = ideal.outputs(sid)[0].reshape(sid.shape[0], -1).argmax(1)
    report = progress or (lambda *a: None)
    campaign = Campaign(population, sid, labels, store=store, keep_outputs=True)
    campaign.run(progress=lambda done, total: report("signatures", done, total, ""))
    out = campaign.store.outputs()
    out = out.reshape(out.shape[0], out.shape[1], -1)
    _logger.info("egis signatures: %s float32 (%.1f MB)", tuple(out.shape),
                 out.numel() * 4 / 1e6)
    return out


def default_range(data_size: int | None) -> tuple[float, float]:
    """The digits' normalised pixel range for zoo models, else (-1, 1)."""
    if data_size is None:
        _logger.warning("egis: no input range known for this model; using %s", FALLBACK_RANGE)
        return FALLBACK_RANGE
    from cimtest.data import digits

    return digits(size=data_size).input_range


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
