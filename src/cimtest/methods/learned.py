"""Tests whose K inputs are learned by gradient through simulated chips: beyond both papers.

Neither paper optimises its inputs against the chips they must judge: the Bayesian vector
is fitted to the ideal model, EGIS picks images by entropy and then only chooses among them.
Here, as in "Efficient Optimized Testing of Resistive RAM Based CNNs" (IOLTS 2024):

1. `propose` draws a pool of candidate inputs: real images, EGIS's synthetic set, or noise;
2. `learn` keeps, greedily, the K candidates whose outputs best predict the training chips'
   outcomes (ridge regression scored on held-out chips), then optimises their values by
   gradient jointly with a small differentiable read-out of the K outputs (an MLP: accuracy
   regressor, pass/fail classifier, or both). Each step forwards a fresh random batch of the
   training chips, with gradients, through `torch.func.vmap` over their weights;
3. the final decision model (LightGBM, as for every other method) is refitted on the frozen
   inputs from all the training chips' outputs on them.

Why `attach_chips`: `learn` receives only the chips' outputs on the candidates, but the
gradient needs each chip's weights. `TestMethod.fit` (and `cimtest.report.compare`) hands the
training chips to `attach_chips` before `learn`; the test keeps their recipe and rebuilds
them from it. Chip ``i`` of the rebuilt population is chip ``i`` of the training chips
(counter-based seeding), which `learn` checks on the first chips' outputs, so the labels
stay aligned. The evaluation chips (another seed) are never seen. The gradient sees the
static (device-to-device) weights; per-read noise reaches the final refit only, through the
engine's forward.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from cimtest._device import DeviceLike, resolve_device
from cimtest._validation import SEED, Bounds, Constraints, InstanceOf, Interval, Options
from cimtest.data import Dataset
from cimtest.engine import BatchedForward, Population
from cimtest.exceptions import ConfigError
from cimtest.hardware.periphery import parse_periphery
from cimtest.methods._model import resolve_model
from cimtest.methods.base import ChipOutcomes, Chips, TestMethod, check_is_fitted, chips_device
from cimtest.methods.baselines import _real_images
from cimtest.methods.detector import AccuracyRegressor, Detector
from cimtest.methods.egis import EntropyImageTest
from cimtest.methods.generator import default_range
from cimtest.methods.selection import check_differentiable, greedy_selection
from cimtest.progress import Progress, report, staged

__all__ = ["Init", "LearnedTest", "OptimizedTest", "ReadOut", "greedy_selection"]

_logger = logging.getLogger(__name__)

Init = Literal["real", "synthetic", "noise"]
"""Where the candidate inputs come from."""
ReadOut = Literal["regressor", "classifier", "both"]
"""What the differentiable read-out predicts: chip accuracy, pass/fail, or both (summed)."""

READOUT_LR = 1e-2
"""Adam step of the read-out's parameters (the inputs' step is the `lr` parameter)."""
CHECKED_CHIPS = 8
"""Training chips whose outputs on every candidate `learn` recomputes to check the attached
recipe."""


class _GradientTest(TestMethod):
    """K inputs optimised through the training chips, then a LightGBM model on them."""

    _parameter_constraints: ClassVar[Constraints] = {
        "k": Interval(1, None, integer=True),
        "init": Options(("real", "synthetic", "noise")),
        "readout": Options(("regressor", "classifier", "both")),
        "candidates": Interval("k", None, integer=True),
        "steps": Interval(0, None, integer=True),
        "batch": Interval(2, None, integer=True),
        "lr": Interval(0, None),
        "hidden": Interval(1, None, integer=True),
        "holdout": Interval(0, 0.5, closed="right"),
        "check_every": Interval(1, None, integer=True),
        "detector_estimators": Interval(1, None, integer=True),
        "input_range": [Bounds(), None],
        "source": [InstanceOf(EntropyImageTest), None],
        "seed": SEED,
    }
    state = ("chosen_", "initial_inputs_", "loss_curve_", "check_curve_", "best_step_",
             "detector_", "cutoff_accuracy_")

    def _store(self, **params: Any) -> None:
        for name, value in params.items():
            setattr(self, name, value)

    # -- propose: the candidate pool ----------------------------------------------------

    def propose(self, model: Any, data: Dataset | None = None, *,
                progress: Progress | None = None, device: DeviceLike = None) -> torch.Tensor:
        """The candidate pool (N, *input_shape) on `device` (None: the CPU), N = `candidates`
        (fewer if the source has fewer): real images of `data`, EGIS's synthetic images, or
        uniform noise."""
        self._check_params()
        where = resolve_device(device)
        module, shape, _, own_data = resolve_model(model)
        gen = torch.Generator(device=where).manual_seed(int(self.seed))
        if self.init == "real":
            n = self.candidates if data is None else min(self.candidates, len(data))
            pool = _real_images(data, n, self.seed, type(self).__name__, where)
        elif self.init == "synthetic":
            source = self.source if self.source is not None else EntropyImageTest(seed=self.seed)
            sid = getattr(source, "sid_", None)
            sid = (source.propose(model, progress=progress, device=where) if sid is None
                   else sid.to(where))
            index = torch.randperm(len(sid), generator=gen, device=where)[: self.candidates]
            pool = sid[index.sort().values].clone()
        else:
            low, high = self.input_range or default_range(own_data, shape)
            pool = low + (high - low) * torch.rand((self.candidates, *shape), generator=gen,
                                                   device=where)
        if len(pool) < self.k:
            raise ConfigError(f"{type(self).__name__} needs at least k={self.k} candidate "
                              f"inputs; its {self.init} pool has {len(pool)}")
        check_differentiable(module, pool[:1])
        self.candidates_ = pool
        self._module = module
        self._remember(model)
        return pool

    def attach_chips(self, chips: Chips) -> None:
        """Keep the recipe and the device of the training chips, to rebuild their weights
        in `learn` (on that device)."""
        self._recipe = dict(chips.recipe())
        self._device = chips_device(chips)

    # -- learn: selection, optimisation, refit -----------------------------------------

    def learn(self, outputs: torch.Tensor, outcomes: ChipOutcomes, *,
              progress: Progress | None = None) -> _GradientTest:
        """Select K candidates, optimise them through the training chips, refit the final
        model on the chips' outputs on them. `outputs` (D, N, *out) are on `candidates_`."""
        check_is_fitted(self, ("candidates_",))
        owner = type(self).__name__
        regress = self.readout in ("regressor", "both")
        if regress and (outcomes.accuracy is None or outcomes.cutoff_accuracy is None):
            raise ConfigError(f"{owner}'s readout={self.readout!r} predicts chip accuracy: it "
                              "needs the training chips' accuracies and A_cutoff")
        failed = (~outcomes.passed).astype(np.float64)
        population = self._population(outputs)
        target = outcomes.accuracy if regress else failed
        self.chosen_ = greedy_selection(outputs, target, self.k, self.seed)
        where = population.device
        self.initial_inputs_ = self.candidates_[torch.as_tensor(self.chosen_)].to(where)
        targets = []
        if regress:
            accuracy = torch.as_tensor(outcomes.accuracy, dtype=torch.float32, device=where)
            targets.append((accuracy - accuracy.mean()) / accuracy.std().clamp_min(1e-6))
        if self.readout in ("classifier", "both"):
            targets.append(torch.as_tensor(failed, dtype=torch.float32, device=where))
        self.inputs_, outputs = self._optimise(population, torch.stack(targets, dim=1),
                                               target, progress)
        self.detector_ = self._final(_flatten(outputs), target)
        self.threshold_ = 0.0 if regress else 0.5
        cutoff = outcomes.cutoff_accuracy
        self.cutoff_accuracy_ = None if cutoff is None else float(cutoff)
        return self

    def _population(self, outputs: torch.Tensor) -> Population:
        """The attached training chips rebuilt from their recipe, checked against `outputs`."""
        owner = type(self).__name__
        recipe = getattr(self, "_recipe", None)
        if recipe is None:
            raise ConfigError(f"{owner} learns through the training chips' weights: fit it "
                              "with fit(model, chips, outcomes), or call attach_chips(chips) "
                              "before learn")
        array_size = recipe.get("array_size")
        population = Population(self._module, recipe["fault"], recipe["seed"], recipe["n"],
                                array_size=None if array_size is None else tuple(array_size),
                                bits_per_cell=recipe.get("bits_per_cell", 1),
                                periphery=parse_periphery(recipe.get("hardware")),
                                device=self._device)
        if population.n != len(outputs):
            raise ConfigError(f"{owner}: {len(outputs)} chips' outputs but {population.n} "
                              "attached chips")
        first = range(min(CHECKED_CHIPS, population.n))
        # every candidate: a periphery's output noise is drawn for the whole forward pass
        again = population.outputs(self.candidates_, chips=first)
        given = outputs[: len(first)].reshape(again.shape).to(again.device)
        scale = float(given.abs().max()) or 1.0
        if not torch.allclose(again, given, rtol=1e-3, atol=1e-3 * scale):
            raise ConfigError(f"{owner}: the outputs given to learn are not those of the "
                              "attached chips on the proposed candidates")
        return population

    def _optimise(self, population: Population, targets: torch.Tensor, target: np.ndarray,
                  progress: Progress | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Adam on the K inputs and the read-out, a fresh batch of training chips per step;
        the inputs stay within the candidate pool's range.

        A seeded `holdout` share of the training chips never enters a step: the inputs of
        every `check_every`-th step (and the initial ones) are scored by fitting the final
        model on the other chips' outputs on them and scoring it on the held ones (squared
        error of the accuracy over its variance, or the Brier score of pass/fail), and the
        best-scoring inputs are kept, so that inputs that fit the stepped chips but not the
        others are not (the initial inputs when no step helps). The checks never steer the
        steps, so they run after the last step, in one pass that draws each chip once for
        all the checked inputs. Sets `loss_curve_`, `check_curve_` and `best_step_`; returns
        the kept inputs and every training chip's outputs on them, on the chips' device.
        The steps' gradients run through the chips' weights without their periphery (its
        DAC and ADC round, which has no gradient); the checks and the final model see the
        chips' outputs, periphery included.
        """
        where = population.device
        module = BatchedForward(population.mapped).module.requires_grad_(False)
        forward = vmap(lambda w, x: functional_call(module, w, (x,)), in_dims=(0, None))
        low, high = float(self.candidates_.min()), float(self.candidates_.max())
        x = self.initial_inputs_.clone().requires_grad_()
        with torch.random.fork_rng():  # nn.Linear draws its init from the global generator
            torch.manual_seed(int(self.seed))
            width = self.k * int(np.prod(_output_shape(module, x)))
            readout = nn.Sequential(nn.Linear(width, self.hidden), nn.Tanh(),
                                    nn.Linear(self.hidden, targets.shape[1])).to(where)
        optimiser = torch.optim.Adam([
            {"params": [x], "lr": self.lr * (high - low)},
            {"params": readout.parameters(), "lr": READOUT_LR},
        ])
        gen = torch.Generator(device=where).manual_seed(int(self.seed))
        order = torch.randperm(population.n, generator=gen, device=where)
        n_held = max(2, round(self.holdout * population.n))
        held, stepped = order[:n_held].sort().values, order[n_held:]
        batch = min(self.batch, len(stepped))
        self.loss_curve_ = np.zeros(self.steps)
        snapshots = [(0, x.detach().clone())]
        for step in range(self.steps):
            drawn = torch.randperm(len(stepped), generator=gen, device=where)[:batch]
            chips = stepped[drawn].sort().values
            weights = population.mapped.layer_weights(population.weights(chips.tolist()))
            out = forward(weights, x).reshape(batch, -1)
            mean, std = out.mean(dim=0).detach(), out.std(dim=0).detach().clamp_min(1e-6)
            loss = self._loss(readout((out - mean) / std), targets[chips])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                x.clamp_(low, high)
            self.loss_curve_[step] = float(loss.detach())
            if (step + 1) % self.check_every == 0 or step + 1 == self.steps:
                snapshots.append((step + 1, x.detach().clone()))
            report(progress, step + 1, self.steps, f"optimise: loss {self.loss_curve_[step]:.4f}")
        outputs = population.outputs_each([inputs for _, inputs in snapshots],
                                          progress=staged(progress, "check the inputs"))
        checked = torch.cat([stepped.sort().values, held])
        errors = [self._held_out_error(_flatten(out[checked]), target[checked.cpu().numpy()],
                                       len(stepped)) for out in outputs]
        best = int(np.argmin(errors))
        self.check_curve_ = np.asarray([(s, e) for (s, _), e in zip(snapshots, errors,
                                                                     strict=True)])
        self.best_step_ = snapshots[best][0]
        _logger.info("%s: held-out error %.4f at step 0, best %.4f at step %d", self.name,
                     errors[0], errors[best], self.best_step_)
        return snapshots[best][1], outputs[best]

    def _held_out_error(self, features: np.ndarray, target: np.ndarray, n_fit: int) -> float:
        """The final model fitted on the first `n_fit` chips, scored on the others: squared
        error of the accuracy over its variance, or the Brier score of pass/fail."""
        fit, held = slice(None, n_fit), slice(n_fit, None)
        model = self._final(features[fit], target[fit])
        if isinstance(model, AccuracyRegressor):
            error = (model.predict(features[held]) - target[held]) ** 2
            return float(error.mean() / (target[fit].var() or 1.0))
        return float(np.mean((model.probability(features[held]) - (target[held] == 0)) ** 2))

    def _final(self, features: np.ndarray, target: np.ndarray) -> Detector:
        """The final model fitted on signatures (D, F): a LightGBM accuracy regressor on
        `target` = accuracies (read-outs with a regressor), else the detector on `target` =
        fail (1.0) / pass (0.0)."""
        if self.readout in ("regressor", "both"):
            return AccuracyRegressor(n_estimators=self.detector_estimators,
                                     seed=self.seed).fit(features, target)
        return Detector(n_estimators=self.detector_estimators,
                        seed=self.seed).fit(features, target == 0)

    def _loss(self, predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """MSE on the standardised accuracy, BCE on fail, or their sum (`readout`)."""
        if self.readout == "regressor":
            return F.mse_loss(predicted[:, 0], targets[:, 0])
        if self.readout == "classifier":
            return F.binary_cross_entropy_with_logits(predicted[:, 0], targets[:, 0])
        return (F.mse_loss(predicted[:, 0], targets[:, 0])
                + F.binary_cross_entropy_with_logits(predicted[:, 1], targets[:, 1]))

    # -- respond, score, decide --------------------------------------------------------

    def respond(self, outputs: torch.Tensor) -> np.ndarray:
        """Signatures, float64 (n, K*M), from outputs (n, K, *out) on `inputs_`."""
        check_is_fitted(self, ("inputs_",))
        return _flatten(outputs)

    def score(self, features: np.ndarray) -> np.ndarray:
        """A_cutoff minus the predicted accuracy (regressor read-outs), else the detector's
        probability of fail."""
        predicted = self.predicted_accuracy(features)
        if predicted is not None:
            return self.cutoff_accuracy_ - predicted
        return 1.0 - self.detector_.probability(features)

    def describe(self) -> dict[str, Any]:
        """The base description, with the start, the gradient steps and the step kept."""
        check_is_fitted(self, ("best_step_",))
        return {**super().describe(), "init": self.init, "readout": self.readout,
                "steps": self.steps, "best_step": int(self.best_step_),
                "chosen": np.asarray(self.chosen_).tolist(),
                "check_curve": np.asarray(self.check_curve_).tolist()}

    def figures(self) -> dict[str, torch.Tensor]:
        """The K inputs before and after the gradient steps."""
        check_is_fitted(self, ("initial_inputs_",))
        return {"start": self.initial_inputs_, "inputs": self.inputs_}

    def predicted_accuracy(self, features: np.ndarray) -> np.ndarray | None:
        """The final regressor's accuracy (percent) of each chip; None for a pass/fail
        detector (a read-out without the regressor)."""
        check_is_fitted(self, ("detector_",))
        if not isinstance(self.detector_, AccuracyRegressor):
            return None
        return self.detector_.predict(features)

    def model_bytes(self) -> int:
        """Bytes of the final model in LightGBM's text format."""
        check_is_fitted(self, ("detector_",))
        return self.detector_.size_bytes()


class OptimizedTest(_GradientTest):
    """K real images optimised against the chips from their accuracies (IOLTS 2024).

    Parameters
    ----------
    k : int
        Test inputs.
    init : {"real", "synthetic", "noise"}
        Candidate pool (the ablation's other pools need no real images).
    readout : {"regressor", "classifier", "both"}
        What the differentiable read-out predicts; the final model is a LightGBM accuracy
        regressor when it includes the regressor, else the pass/fail detector.
    candidates : int
        Candidate inputs measured on the training chips before the greedy choice of K.
    steps : int
        Gradient steps (0: the greedy choice alone).
    batch : int
        Training chips forwarded, with gradients, per step (fresh each step).
    lr : float
        Adam step of the inputs, as a fraction of the pool's value range.
    hidden : int
        Hidden units of the read-out MLP.
    holdout : float
        Share of the training chips kept out of the steps, to choose the step whose inputs
        generalise best (the initial inputs if none beats them).
    check_every : int
        Steps between two such checks.
    detector_estimators : int
        Boosting rounds of the final model.
    input_range : (float, float) or None
        Range of noise candidates; None: the digits range for zoo models, else (-1, 1).
    source : EntropyImageTest or None
        Synthetic candidates' source (its SID is reused if it proposed one).
    seed : int
        Seeds the pool, the selection split, the chip batches and the read-out.
    """

    name = "optimized"
    needs = ("real images", "chip accuracies")

    def __init__(
        self, *, k: int = 4, init: Init = "real", readout: ReadOut = "regressor",
        candidates: int = 256, steps: int = 100, batch: int = 32, lr: float = 0.01,
        hidden: int = 32, holdout: float = 0.2, check_every: int = 20,
        detector_estimators: int = 100,
        input_range: tuple[float, float] | None = None,
        source: EntropyImageTest | None = None, seed: int = 0,
    ) -> None:
        self._store(k=k, init=init, readout=readout, candidates=candidates, steps=steps,
                    batch=batch, lr=lr, hidden=hidden, holdout=holdout,
                    check_every=check_every, detector_estimators=detector_estimators,
                    input_range=input_range, source=source, seed=seed)


class LearnedTest(_GradientTest):
    """K synthetic or noise inputs optimised against the chips from pass/fail labels only:
    dataset-agnostic, which neither paper nor IOLTS 2024 offers.

    Parameters are those of `OptimizedTest`, with ``init`` in {"synthetic", "noise"} and
    ``readout`` "classifier" only (labels cannot train an accuracy regressor).
    """

    name = "learned"
    needs = ("chip labels",)
    _parameter_constraints: ClassVar[Constraints] = {
        **_GradientTest._parameter_constraints,
        "init": Options(("synthetic", "noise")),
        "readout": Options(("classifier",)),
    }

    def __init__(
        self, *, k: int = 4, init: Init = "synthetic", readout: ReadOut = "classifier",
        candidates: int = 256, steps: int = 100, batch: int = 32, lr: float = 0.01,
        hidden: int = 32, holdout: float = 0.2, check_every: int = 20,
        detector_estimators: int = 100,
        input_range: tuple[float, float] | None = None,
        source: EntropyImageTest | None = None, seed: int = 0,
    ) -> None:
        self._store(k=k, init=init, readout=readout, candidates=candidates, steps=steps,
                    batch=batch, lr=lr, hidden=hidden, holdout=holdout,
                    check_every=check_every, detector_estimators=detector_estimators,
                    input_range=input_range, source=source, seed=seed)


@torch.no_grad()
def _output_shape(module: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    return tuple(module(x[:1].detach()).shape[1:])


def _flatten(outputs: torch.Tensor) -> np.ndarray:
    return outputs.detach().double().reshape(outputs.shape[0], -1).cpu().numpy()
