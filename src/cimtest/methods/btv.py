"""The Bayesian test vector (paper 1): one learned input distribution whose output spread σ_y
stays small on the ideal chip and grows with memristive faults and variations.

Each input element is an independent Gaussian ``q = N(mean, exp(log_var))``. `fit` minimises,
on the ideal (quantised, fault-free) chip, paper 1 eq. 4::

    loss = E_q[ RMS(y - mean(y)) ] + alpha * KL(q || prior)

where the RMS runs over the model's output elements (C logits; C x H x W for segmentation
and generators) pooled over the `n_samples` Monte Carlo samples of one test, and samples are
drawn by eq. 5, ``x = N(0, 1) * sqrt(exp(log_var)) + mean`` (reparameterised).

Prior and KL scale (the paper leaves both open): the prior is ``N(0, prior**2)`` per element
in the model's *normalised* input space (the space real inputs live in: digits are
standardised per channel, a generator's latent is N(0, 1)), and the KL is **averaged** over
the input elements (``kl="mean"``), so that `alpha` weighs one element's divergence against
the output RMS and keeps its meaning across input sizes (8x8, 32x32, a latent of 100).
``kl="sum"`` gives the textbook ELBO scaling; then alpha must shrink with the input size.
Neither makes the paper's alpha of 1e3..1e8 meaningful: with any KL of order one per
element such an alpha pins q to the prior. See docs/btv.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cimtest._validation import check_interval, check_option
from cimtest.artifacts import Artifact
from cimtest.engine import Population, chip_scores
from cimtest.exceptions import ArtifactError, ConfigError
from cimtest.faults import parse_spec
from cimtest.fingerprint import state_fingerprint
from cimtest.loading import LoadedModel
from cimtest.methods._model import ideal_chip, model_reference
from cimtest.methods.base import ChipOutcomes, ScreeningTest, check_is_fitted
from cimtest.metrics import coverage, false_alarm_rate, rate, roc_auc, verifiable_coverage

__all__ = [
    "METHOD",
    "BayesianTestVector",
    "ChipResults",
    "chip_results",
    "default_samples",
    "kl_divergence",
    "spread",
    "summarise",
]

_logger = logging.getLogger(__name__)

METHOD = "btv"
"""The ``method`` tag of Bayesian test vector artefacts."""

_FRESH_CHUNK = 256
"""Inputs forwarded at once when drawing fresh samples on a chip module."""


def default_samples(output_shape: tuple[int, ...]) -> int:
    """The paper's rule for N: one sample when the output has >= 10 elements, else 16.

    A model with one or two outputs (a discriminator, a binary classifier) cannot show a
    spread in one forward pass, so its test pools several samples.
    """
    return 1 if math.prod(output_shape) >= 10 else 16


def kl_divergence(
    mean: torch.Tensor, log_var: torch.Tensor, prior: float, reduction: str = "mean"
) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, prior**2)) per element, averaged or summed.

    Per element: ``log(prior) - log_var / 2 + (exp(log_var) + mean**2) / (2 prior**2) - 1/2``.

    Parameters
    ----------
    mean, log_var : torch.Tensor
        float32 of the input shape: the variational parameters.
    prior : float
        Standard deviation of the zero-mean Gaussian prior.
    reduction : str
        ``"mean"`` over the elements or ``"sum"``.
    """
    var_ratio = torch.exp(log_var) / prior**2
    per_element = 0.5 * (var_ratio + mean**2 / prior**2 - 1.0 - torch.log(var_ratio))
    return per_element.mean() if reduction == "mean" else per_element.sum()


class BayesianTestVector(ScreeningTest):
    """A Bayesian test vector and its threshold(s), learned from the model alone.

    Parameters
    ----------
    alpha : float
        Weight of the KL term of eq. 4 (with ``kl="mean"``: per input element).
    steps : int
        Adam steps of the fit.
    lr : float
        Adam learning rate.
    n_samples : int
        N, the samples of the vector one test forwards (pooled into one σ_y). 1 for models
        with C >= 10 outputs; more for one or two outputs (see `default_samples`).
    prior : float
        Standard deviation of the prior ``N(0, prior**2)`` in the normalised input space.
    kl : str
        ``"mean"`` (KL averaged over input elements) or ``"sum"``.
    batch : int
        Independent tests (sets of `n_samples` samples) averaged per step: the Monte Carlo
        estimate of the expectation in eq. 4.
    offset : float
        Added to σ_y of the ideal chip to give `threshold_` (paper: 0 to 0.3).
    false_alarm : float or None
        Target false-alarm rate of the second rule: `threshold_far_` is set so that at most
        this fraction of fresh samples of the vector flags the ideal chip. None: no rule.
    far_draws : int
        Fresh tests drawn on the ideal chip to set `threshold_far_`.
    read_noise : str or None
        A per-read (cycle-to-cycle) fault spec, e.g. ``"mult:eta=0.02@per-read"``: the fresh
        draws that set `threshold_far_` then run on the ideal chip with this noise redrawn
        at every forward, so the false-alarm rule covers read noise too.
    seed : int
        Seeds the initialisation, the training noise, the stored sample and the fresh draws:
        the same seed and model give bit-identical thresholds.

    Attributes
    ----------
    mean_, log_var_ : torch.Tensor
        float32 of shape `input_shape_`: the learned per-element mean and log-variance.
    sample_ : torch.Tensor
        float32 (n_samples, *input_shape_): the stored test inputs (drawn once, eq. 5).
    sigma_ideal_ : float
        σ_y of the ideal chip for `sample_`.
    threshold_ : float
        ``sigma_ideal_ + offset``.
    threshold_far_ : float or None
        The false-alarm rule's threshold (None without `false_alarm`).
    loss_curve_ : numpy.ndarray
        float64 (steps,): the loss at each step.
    input_shape_, output_shape_ : tuple of int
        Shapes of one input and one output of the model.
    fingerprint_ : str
        Fingerprint of the model the test was fitted on.
    model_ : dict or None
        How to load that model again (`cimtest.loading.LoadedModel.reference`), stored in
        the artefact; None when fitted on a bare module.

    Examples
    --------
    >>> test = BayesianTestVector(alpha=0.01, steps=200).fit(loaded_model)   # doctest: +SKIP
    >>> sigma = test.respond(population.outputs(test.sample_))               # doctest: +SKIP
    >>> uncertain = test.decide(sigma)                                       # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        alpha: float = 0.01,
        steps: int = 300,
        lr: float = 0.05,
        n_samples: int = 1,
        prior: float = 1.0,
        kl: str = "mean",
        batch: int = 8,
        offset: float = 0.0,
        false_alarm: float | None = None,
        far_draws: int = 1000,
        read_noise: str | None = None,
        seed: int = 0,
    ) -> None:
        self.alpha = alpha
        self.steps = steps
        self.lr = lr
        self.n_samples = n_samples
        self.prior = prior
        self.kl = kl
        self.batch = batch
        self.offset = offset
        self.false_alarm = false_alarm
        self.far_draws = far_draws
        self.read_noise = read_noise
        self.seed = seed

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_interval("alpha", self.alpha, 0, None, owner)
        check_interval("steps", self.steps, 1, None, owner)
        check_interval("lr", self.lr, 0, None, owner, closed="right")
        check_interval("n_samples", self.n_samples, 1, None, owner)
        check_interval("prior", self.prior, 0, None, owner, closed="right")
        check_option("kl", self.kl, ("mean", "sum"), owner)
        check_interval("batch", self.batch, 1, None, owner)
        check_interval("offset", self.offset, None, None, owner)
        if self.false_alarm is not None:
            check_interval("false_alarm", self.false_alarm, 0, 1, owner, closed="neither")
        check_interval("far_draws", self.far_draws, 1, None, owner)
        if self.read_noise is not None:
            static, _ = parse_spec(self.read_noise).split_time()
            if static.faults:
                raise ConfigError(f"The 'read_noise' parameter of {owner} must hold per-read "
                                  f"faults only (suffix @per-read); got {self.read_noise!r}.")

    def fit(
        self, model: LoadedModel | nn.Module, input_shape: tuple[int, ...] | None = None
    ) -> BayesianTestVector:
        """Learn the vector on the ideal chip of `model` and set the threshold(s).

        Parameters
        ----------
        model : LoadedModel or torch.nn.Module
            The float model; it is quantised into its ideal chip (int8), never changed.
        input_shape : tuple of int, optional
            Shape of one input; taken from a `LoadedModel` or a module's ``input_shape``
            attribute when not given.

        Returns
        -------
        self
        """
        self._check_params()
        module, shape, fingerprint = _resolve(model, input_shape)
        population, ideal = ideal_chip(module, int(self.seed))
        with torch.no_grad():
            output_shape = tuple(ideal(torch.zeros(1, *shape)).shape[1:])
        if self.n_samples * math.prod(output_shape) < 2:
            raise ConfigError(
                f"a model with {math.prod(output_shape)} output needs n_samples > 1 "
                "to show a spread (the paper's rule for small C)"
            )
        gen = torch.Generator().manual_seed(int(self.seed))
        mean = (torch.randn(shape, generator=gen) * self.prior).requires_grad_()
        log_var = torch.full(shape, 2.0 * math.log(self.prior)).requires_grad_()
        optimiser = torch.optim.Adam([mean, log_var], lr=self.lr)
        curve = np.empty(self.steps, dtype=np.float64)
        for step in range(self.steps):
            eps = torch.randn((self.batch * self.n_samples, *shape), generator=gen)
            outputs = ideal(eps * torch.exp(0.5 * log_var) + mean)
            sigma = spread(outputs.reshape(self.batch, self.n_samples, *outputs.shape[1:]))
            loss = sigma.mean() + self.alpha * kl_divergence(mean, log_var, self.prior, self.kl)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            curve[step] = loss.item()
        _logger.info("btv fit: loss %.4g -> %.4g in %d steps", curve[0], curve[-1], self.steps)
        self.input_shape_ = shape
        self.output_shape_ = output_shape
        self.fingerprint_ = fingerprint
        self.model_ = model_reference(model)
        self.mean_ = mean.detach().clone()
        self.log_var_ = log_var.detach().clone()
        self.loss_curve_ = curve
        self.sample_ = self.draw(1, gen)[0]
        # through the engine, the path every chip takes, so the ideal chip scores exactly this
        self.sigma_ideal_ = float(self.respond(population.outputs(self.sample_))[0])
        self.threshold_ = self.sigma_ideal_ + float(self.offset)
        self.threshold_far_ = None
        if self.false_alarm is not None:
            chip = ideal if self.read_noise is None else population.with_faults(self.read_noise)
            fresh = self._fresh(chip, self.far_draws, gen)
            self.threshold_far_ = _quantile_threshold(fresh, self.false_alarm)
        return self

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """σ_y of each chip: the spread of its outputs for the stored test, pooled over N.

        Parameters
        ----------
        outputs : torch.Tensor
            float32 (n_chips, n_samples, *output_shape): each chip's outputs for `sample_`
            (what `Population.outputs(test.sample_)` returns).

        Returns
        -------
        numpy.ndarray
            float64 (n_chips,): the RMS deviation of each chip's n_samples x output elements
            from their mean (population standard deviation, as eq. 4).
        """
        check_is_fitted(self, ("sample_",))
        if outputs.dim() < 2 or outputs.shape[1] != self.n_samples:
            raise ConfigError(
                f"respond needs outputs of shape (n_chips, {self.n_samples}, ...); "
                f"got {tuple(outputs.shape)}"
            )
        return spread(outputs.detach().double()).numpy()

    def decide(self, sigma_y: np.ndarray, rule: str = "offset") -> np.ndarray:
        """Verdicts: True (uncertain) where σ_y is higher than the rule's threshold.

        Parameters
        ----------
        sigma_y : numpy.ndarray
            float64 (n_chips,).
        rule : str
            ``"offset"``: `threshold_` (σ_y of the ideal chip for the stored sample + offset,
            the paper's rule; for σ_y measured with `sample_`). ``"false_alarm"``:
            `threshold_far_` (for σ_y measured with fresh samples of the vector; needs a fit
            with `false_alarm`).

        Returns
        -------
        numpy.ndarray
            bool (n_chips,). The comparison is strict (paper Fig. 7, "higher than t"), so the
            ideal chip passes the offset rule at offset 0; eq. 6 counts ``σ_y >= t``, which
            differs only for chips whose outputs equal the ideal chip's exactly.
        """
        return np.asarray(sigma_y, dtype=np.float64) > self.decision_threshold(rule)

    def propose(self, model: LoadedModel | nn.Module, data: object = None) -> torch.Tensor:
        """Fit from the model alone (`data` is ignored); the stored sample is the test input."""
        return self.fit(model).sample_

    def learn(self, outputs: torch.Tensor, chips: ChipOutcomes) -> BayesianTestVector:
        """Nothing to learn from chips: the thresholds come from the ideal chip."""
        check_is_fitted(self, ("threshold_",))
        return self

    def score(self, sigma_y: np.ndarray) -> np.ndarray:
        """σ_y itself (higher = more uncertain)."""
        return np.asarray(sigma_y, dtype=np.float64)

    @property
    def inputs_(self) -> torch.Tensor:
        """What a chip forwards: the stored sample (n_samples, *input_shape)."""
        check_is_fitted(self, ("sample_",))
        return self.sample_

    def test_bytes(self) -> int:
        """Bytes stored: mean and variance, float32 (paper 1's accounting)."""
        check_is_fitted(self, ("mean_",))
        return 2 * int(self.mean_.numel()) * 4

    def decision_threshold(self, rule: str = "offset") -> float:
        """The threshold `decide` uses for `rule` (``"offset"`` or ``"false_alarm"``)."""
        check_is_fitted(self, ("threshold_",))
        check_option("rule", rule, ("offset", "false_alarm"), type(self).__name__)
        if rule == "offset":
            return self.threshold_
        if self.threshold_far_ is None:
            raise ConfigError("the false_alarm rule needs a test fitted with false_alarm=...")
        return self.threshold_far_

    def fresh_responses(
        self, chip: nn.Module | Population, draws: int, *, seed: int = 0
    ) -> np.ndarray:
        """σ_y of `chip` for `draws` fresh tests (new samples of the vector, not `sample_`).

        What a chip that stores mean and log-variance and samples at each test would see;
        on the ideal chip it gives the false-alarm rate on fault-free chips.

        Parameters
        ----------
        chip : torch.nn.Module or Population
            A chip as a module, e.g. ``Population(model, "none").mapped.ideal``, or chip 0
            of a population (e.g. the ideal chip with per-read noise).
        draws : int
            Number of fresh tests, each of `n_samples` samples.
        seed : int
            Seed of the draws.

        Returns
        -------
        numpy.ndarray
            float64 (draws,).
        """
        check_is_fitted(self, ("mean_",))
        return self._fresh(chip, draws, torch.Generator().manual_seed(int(seed)))

    def to_artifact(self) -> Artifact:
        """The fitted test as an `Artifact` (mean, log-variance, sample, thresholds...)."""
        check_is_fitted(self, ("threshold_",))
        thresholds = {"offset": self.threshold_}
        if self.threshold_far_ is not None:
            thresholds["false_alarm"] = self.threshold_far_
        return Artifact(
            method=METHOD,
            tensors={"mean": self.mean_, "log_var": self.log_var_, "sample": self.sample_},
            params=self.get_params(),
            thresholds=thresholds,
            input_shape=self.input_shape_,
            fingerprint=self.fingerprint_,
            model=getattr(self, "model_", None),
            info={
                "sigma_ideal": self.sigma_ideal_,
                "output_shape": list(self.output_shape_),
                "final_loss": float(self.loss_curve_[-1]),
                "loss_curve": self.loss_curve_.tolist(),
            },
        )

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> BayesianTestVector:
        """Rebuild a fitted test from an `Artifact` written by `to_artifact`."""
        if artifact.method != METHOD:
            raise ArtifactError(f"artefact holds a '{artifact.method}' test, not '{METHOD}'")
        missing = {"mean", "log_var", "sample"} - set(artifact.tensors)
        if missing or "offset" not in artifact.thresholds or "sigma_ideal" not in artifact.info:
            raise ArtifactError("btv artefact lacks tensors, thresholds or sigma_ideal")
        try:
            test = cls(**artifact.params)
        except TypeError as exc:
            raise ArtifactError(f"btv artefact has unknown parameters: {exc}") from exc
        test.input_shape_ = tuple(artifact.input_shape)
        test.fingerprint_ = artifact.fingerprint
        test.model_ = artifact.model
        test.mean_ = artifact.tensors["mean"]
        test.log_var_ = artifact.tensors["log_var"]
        test.sample_ = artifact.tensors["sample"]
        test.loss_curve_ = np.asarray(artifact.info.get("loss_curve", []), dtype=np.float64)
        test.output_shape_ = tuple(artifact.info.get("output_shape", ()))
        test.sigma_ideal_ = float(artifact.info["sigma_ideal"])
        test.threshold_ = artifact.thresholds["offset"]
        test.threshold_far_ = artifact.thresholds.get("false_alarm")
        return test

    def draw(self, tests: int, generator: torch.Generator) -> torch.Tensor:
        """Eq. 5: fresh samples ``N(0, 1) * sqrt(exp(log_var_)) + mean_`` of the vector.

        Parameters
        ----------
        tests : int
            Number of tests to draw, each of `n_samples` samples.
        generator : torch.Generator
            Source of the N(0, 1) draws.

        Returns
        -------
        torch.Tensor
            float32 (tests, n_samples, *input_shape_).
        """
        check_is_fitted(self, ("mean_",))
        eps = torch.randn((tests, self.n_samples, *self.input_shape_), generator=generator)
        return eps * torch.sqrt(torch.exp(self.log_var_)) + self.mean_

    def _fresh(
        self, chip: nn.Module | Population, draws: int, gen: torch.Generator
    ) -> np.ndarray:
        x = self.draw(draws, gen)
        flat = x.reshape(-1, *self.input_shape_)
        with torch.no_grad():
            if isinstance(chip, Population):
                # one call: per-read noise is drawn per input index, so chunks would repeat it
                out = chip.outputs(flat, chips=[0])[0]
            else:
                out = torch.cat([chip(part) for part in flat.split(_FRESH_CHUNK)])
        return spread(out.reshape(*x.shape[:2], *out.shape[1:]).double()).numpy()


@dataclass(frozen=True)
class ChipResults:
    """What a campaign measures per chip: σ_y for the stored test and, with data, accuracy.

    Attributes
    ----------
    sigma_y : numpy.ndarray
        float64 (n_chips,): σ_y for the stored sample.
    accuracy : numpy.ndarray or None
        float64 (n_chips,) accuracy in percent (mean IoU in percent for segmentation), or
        None when no labelled data was given (generators, discriminators).
    sigma_fresh : numpy.ndarray or None
        float64 (n_chips, K): σ_y for K fresh tests (the same K for every chip), or None.
    sigma_point : numpy.ndarray or None
        float64 (n_chips,): σ_y pooled over real images (the point-estimate baseline), or
        None.
    """

    sigma_y: np.ndarray
    accuracy: np.ndarray | None
    sigma_fresh: np.ndarray | None = None
    sigma_point: np.ndarray | None = None


def chip_results(
    test: BayesianTestVector,
    population: Population,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    task: str = "classification",
    fresh: torch.Tensor | None = None,
    point: torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ChipResults:
    """σ_y of every chip of `population` for the stored test, and its accuracy on (x, y).

    One pass per chunk of chips: the test's samples and the data go through each chip
    together, so σ_y and accuracy come from the very same weights (per-read noise aside).

    Parameters
    ----------
    test : BayesianTestVector
        A fitted test.
    population : Population
        The chips.
    x, y : torch.Tensor, optional
        Labelled data: float32 (T, *input_shape) and int64 labels; None skips accuracy.
    task : str
        ``"classification"`` or ``"segmentation"`` (how accuracy is scored).
    fresh : torch.Tensor, optional
        float32 (K, n_samples, *input_shape): K fresh tests (`BayesianTestVector.draw`)
        every chip also answers, for the false-alarm rule.
    point : torch.Tensor, optional
        float32 (P, *input_shape): real images whose pooled σ_y is the point-estimate
        baseline (`cimtest.methods.baselines.PointTestVectors`), measured on the same chips.
    progress : callable, optional
        ``progress(done, total)`` after each chunk.
    """
    check_is_fitted(test, ("sample_",))
    n = test.sample_.shape[0]
    k = 0 if fresh is None else fresh.shape[0]
    p = 0 if point is None else point.shape[0]
    parts = [test.sample_] + ([] if fresh is None else [fresh.reshape(-1, *fresh.shape[2:])])
    parts += ([] if point is None else [point]) + ([] if x is None else [x])
    sigmas, scores, fresh_sigmas, point_sigmas = [], [], [], []
    for _, out in population.iter_chunks(torch.cat(parts), progress=progress):
        sigmas.append(test.respond(out[:, :n]))
        if k:
            tests = out[:, n : n + k * n].reshape(out.shape[0] * k, n, *out.shape[2:])
            fresh_sigmas.append(test.respond(tests).reshape(out.shape[0], k))
        if p:
            point_sigmas.append(spread(out[:, n + k * n : n + k * n + p].double()).numpy())
        if x is not None:
            scores.append(chip_scores(out[:, n + k * n + p :], y, task).numpy())
    return ChipResults(
        np.concatenate(sigmas),
        np.concatenate(scores) if scores else None,
        np.concatenate(fresh_sigmas) if fresh_sigmas else None,
        np.concatenate(point_sigmas) if point_sigmas else None,
    )


def summarise(
    results: ChipResults,
    thresholds: dict[str, float],
    *,
    ideal_accuracy: float | None = None,
    fresh_sigma: np.ndarray | None = None,
    far_threshold: float | None = None,
    point_threshold: float | None = None,
    drop: float = 1.0,
) -> list[dict[str, object]]:
    """One row of test metrics per threshold, rates as fractions with 95 % Wilson bands.

    Flags use the verdict rule of `BayesianTestVector.decide` (σ_y > t). The rows of
    `thresholds` score σ_y of the stored sample; the row ``"false_alarm"`` (when
    `far_threshold` is given) scores every (chip, fresh test) pair of
    ``results.sigma_fresh`` instead, since that threshold is meant for fresh samples.

    Parameters
    ----------
    results : ChipResults
        σ_y (and accuracy) of the faulty chips.
    thresholds : dict of str to float
        Thresholds of the stored sample to score, by label (e.g. ``{"offset=0": 0.41}``).
    ideal_accuracy : float, optional
        A_baseline: the ideal chip's accuracy (needed with accuracy).
    fresh_sigma : numpy.ndarray, optional
        float64 (draws,) σ_y of the ideal chip for fresh samples of the vector.
    far_threshold : float, optional
        `threshold_far_` of the test; needs ``results.sigma_fresh``.
    point_threshold : float, optional
        σ_y of the ideal chip on the real images of ``results.sigma_point``; adds the
        point-estimate baseline's ``coverage_point``, ``false_alarm_nodrop_point`` and
        ``auc_point`` to every row (the same chips, the same verdict rule).
    drop : float
        A chip counts as damaged when its accuracy dropped by at least this many points.

    Returns
    -------
    list of dict
        Keys: ``rule, threshold, chips, coverage[_low, _high], coverage_dropped[...],
        verifiable_coverage[...], false_alarm_ideal[...], false_alarm_nodrop[...], auc,
        dropped, accuracy_mean, sigma_mean`` (None where not measurable).
    """
    accuracy = results.accuracy
    if accuracy is not None and ideal_accuracy is None:
        raise ConfigError("summarise needs ideal_accuracy when chips have an accuracy")
    cases = [(rule, t, results.sigma_y, accuracy) for rule, t in thresholds.items()]
    if far_threshold is not None:
        if results.sigma_fresh is None:
            raise ConfigError("the false_alarm row needs chip results with fresh tests")
        k = results.sigma_fresh.shape[1]
        cases.append(("false_alarm", far_threshold, results.sigma_fresh.reshape(-1),
                      None if accuracy is None else np.repeat(accuracy, k)))
    rows = []
    for rule, t, sigma, acc in cases:
        damaged = None if acc is None else ideal_accuracy - acc >= drop
        row: dict[str, object] = {"rule": rule, "threshold": t, "chips": int(sigma.size)}
        _put(row, "coverage", coverage(sigma, t, strict=True))
        _put(row, "coverage_dropped",
             None if damaged is None else coverage(sigma[damaged], t, strict=True))
        _put(row, "verifiable_coverage", None if damaged is None else verifiable_coverage(
            sigma, t, acc, ideal_accuracy, strict=True))
        _put(row, "false_alarm_ideal",
             None if fresh_sigma is None else false_alarm_rate(fresh_sigma > t))
        _put(row, "false_alarm_nodrop",
             None if damaged is None else false_alarm_rate(sigma[~damaged] > t))
        row["auc"] = None if damaged is None else _finite(roc_auc(sigma, damaged))
        row["dropped"] = None if damaged is None else rate(damaged).value
        row["accuracy_mean"] = None if acc is None else float(acc.mean())
        row["sigma_mean"] = float(sigma.mean())
        if point_threshold is not None and rule != "false_alarm":
            _point_columns(row, results.sigma_point, point_threshold, damaged)
        rows.append(row)
    return rows


def _point_columns(
    row: dict[str, object], sigma: np.ndarray | None, t: float, damaged: np.ndarray | None
) -> None:
    """The point-estimate baseline's coverage, harmless-chip false alarms and AUC."""
    if sigma is None:
        raise ConfigError("the point-estimate columns need chip results with real images")
    _put(row, "coverage_point", coverage(sigma, t, strict=True))
    _put(row, "false_alarm_nodrop_point",
         None if damaged is None else false_alarm_rate(sigma[~damaged] > t))
    row["auc_point"] = None if damaged is None else _finite(roc_auc(sigma, damaged))


def _put(row: dict[str, object], name: str, value) -> None:
    """Store a `Rate` as ``name``, ``name_low``, ``name_high`` (None when not measurable)."""
    row[name] = None if value is None else _finite(value.value)
    row[f"{name}_low"] = None if value is None else _finite(value.low)
    row[f"{name}_high"] = None if value is None else _finite(value.high)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def spread(outputs: torch.Tensor) -> torch.Tensor:
    """RMS deviation from the mean over every dimension after the first: (B, ...) → (B,)."""
    flat = outputs.reshape(outputs.shape[0], -1)
    return torch.sqrt(((flat - flat.mean(dim=1, keepdim=True)) ** 2).mean(dim=1))


def _quantile_threshold(sigmas: np.ndarray, false_alarm: float) -> float:
    """Smallest threshold flagging at most ``floor(false_alarm * n)`` of `sigmas` (σ > t)."""
    ordered = np.sort(sigmas)
    allowed = math.floor(false_alarm * ordered.size)
    return float(ordered[ordered.size - allowed - 1])


def _resolve(
    model: LoadedModel | nn.Module, input_shape: tuple[int, ...] | None
) -> tuple[nn.Module, tuple[int, ...], str]:
    if isinstance(model, LoadedModel):
        return model.module, tuple(input_shape or model.input_shape), model.fingerprint
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise ConfigError("cannot infer the model's input shape; pass input_shape=(C, H, W)")
    return model, tuple(int(v) for v in shape), state_fingerprint(model)
