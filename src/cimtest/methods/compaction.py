"""Image set compaction, paper 2 Algorithm 1: simulated annealing over K-subsets of the SID.

The state is K distinct image indices into the synthetic image dataset (SID). Each iteration
proposes a new set (every slot replaced with probability 0.5 by an image not in the set),
scores it with a reward (mean validation accuracy in percent of a pass/fail classifier over
I train/validation splits of the D labelled chips), accepts it if better or else with
probability ``exp((r_new - r_cur) / T)``, keeps the best set seen, and cools ``T *= rho``
from `t_init` until ``T <= t_final``.

The reward only indexes signatures computed once (chips x SID images x outputs); no chip is
re-run; ``|D_tr| / |D_val| = 4``. The splits are those of Algorithm 1 line 16 by default
(``resplit=True``): iteration t draws I new ones, `ShuffleSplit` seeded from ``(seed, t)``,
so a set's reward belongs to its iteration and is never reused in another; an iteration
scores one set once, so nothing is cached. ``resplit=False`` keeps the earlier choice: I
splits drawn once and shared by every set (common random numbers), each set's reward cached
by its sorted indices. The paper's is the default, and it keeps the annealing from climbing
on the luck of fixed splits (on random labels the sets proposed once cooled score about 4
points nearer chance). Neither makes the best reward a fair estimate: it is the largest of
some 200 noisy rewards, about 6 points above the evaluation TA in both modes on resnet20-8
(docs/egis.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import ShuffleSplit

from cimtest.exceptions import ConfigError
from cimtest.methods.detector import Detector
from cimtest.progress import Progress, report

__all__ = [
    "CompactionResult",
    "SignatureReward",
    "accept",
    "anneal",
    "iterations",
    "propose",
]

_logger = logging.getLogger(__name__)

Reward = Callable[[tuple[int, ...], int], float]
"""A reward: (sorted tuple of SID indices, iteration t from 0) → score (higher is better)."""


@dataclass(frozen=True)
class CompactionResult:
    """What the annealing found.

    Attributes
    ----------
    best : numpy.ndarray
        int64 (K,): SID indices of the best set, in slot order.
    best_reward : float
        Its reward.
    reward_curve : numpy.ndarray
        float64 (iterations, 3): per iteration the temperature, the new set's reward and the
        best reward so far (paper Fig. 4a).
    evaluations : int
        Reward calls: one per iteration, or with ``cache`` one per distinct set.
    """

    best: np.ndarray
    best_reward: float
    reward_curve: np.ndarray
    evaluations: int


def iterations(t_init: float, t_final: float, rho: float) -> int:
    """Iterations of the ``while T > t_final`` loop when T starts at `t_init`, cooled by `rho`."""
    count, t = 0, t_init
    while t > t_final:
        count += 1
        t *= rho
    return count


def propose(current: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Step 1 of Algorithm 1 (lines 5-12): a new set from `current`.

    For k = 1..K in order, with probability 0.5 slot k is replaced by an index drawn
    uniformly from those not in the new set as it stands (so the set stays distinct).

    Parameters
    ----------
    current : numpy.ndarray
        int64 (K,): the current set's SID indices.
    n : int
        Images in the SID (N > K).
    rng : numpy.random.Generator
        Draws, in order per slot: one uniform for the Bernoulli(0.5), then (if 1) one index.
    """
    new = np.array(current, dtype=np.int64, copy=True)
    for k in range(new.size):
        if rng.random() < 0.5:
            free = np.setdiff1d(np.arange(n), new, assume_unique=False)
            new[k] = free[rng.integers(free.size)]
    return new


def accept(r_new: float, r_cur: float, temperature: float, rng: np.random.Generator) -> bool:
    """Step 3 of Algorithm 1 (lines 25-31): take the new set or keep the current one.

    Accept if ``r_new > r_cur``; otherwise with probability ``p = exp((r_new - r_cur) / T)``,
    decided by one uniform draw ``u < p`` (no draw is made when r_new > r_cur).
    """
    if r_new > r_cur:
        return True
    p = math.exp((r_new - r_cur) / temperature)
    return bool(rng.random() < p)


def anneal(
    reward: Reward,
    n: int,
    k: int,
    *,
    t_init: float = 2.0,
    t_final: float = 0.03,
    rho: float = 0.98,
    seed: int = 0,
    cache: bool = False,
    progress: Progress | None = None,
) -> CompactionResult:
    """Algorithm 1: simulated annealing for the K-subset of N images with the best reward.

    Parameters
    ----------
    reward : callable
        ``reward(sorted K indices, iteration)``, called once per iteration for the new set
        (the current set keeps the reward it got when it was new, as lines 25-31 have it).
    n, k : int
        SID size N and compact set size K (1 <= K < N).
    t_init, t_final, rho : float
        Initial and final temperature and geometric cooling rate (paper: 2.0, 0.03, 0.98).
    seed : int
        Seeds the initial set, the proposals and the acceptance draws.
    cache : bool
        The reward does not depend on the iteration: score each distinct set once and read
        its reward back when the set is proposed again (exact only then).
    progress : callable, optional
        ``progress(iteration, total, "compaction: T ... best ...")`` after each iteration.
    """
    if not 1 <= k < n:
        raise ConfigError(f"compaction needs 1 <= K < N; got K={k}, N={n}")
    if not (t_init > t_final > 0 and 0 < rho < 1):
        raise ConfigError(f"compaction needs t_init > t_final > 0 and 0 < rho < 1; got "
                          f"{t_init}, {t_final}, {rho}")
    rng = np.random.default_rng(seed)
    known: dict[tuple[int, ...], float] = {}
    calls = 0

    def score(subset: np.ndarray, iteration: int) -> float:
        nonlocal calls
        key = tuple(sorted(int(i) for i in subset))
        if cache and key in known:
            return known[key]
        calls += 1
        value = float(reward(key, iteration))
        if cache:
            known[key] = value
        return value

    current = rng.choice(n, size=k, replace=False).astype(np.int64)
    r_cur = r_best = -math.inf
    best = current.copy()
    total = iterations(t_init, t_final, rho)
    curve = np.empty((total, 3), dtype=np.float64)
    t = float(t_init)
    step = 0
    while t > t_final:
        new = propose(current, n, rng)
        r_new = score(new, step)
        if accept(r_new, r_cur, t, rng):
            current, r_cur = new, r_new
        if r_new > r_best:
            best, r_best = new.copy(), r_new
        curve[step] = (t, r_new, r_best)
        step += 1
        report(progress, step, total, f"compaction: T {t:.3f} best {r_best:.2f}")
        t *= rho
    _logger.info("compaction: best reward %.3f after %d iterations, %d reward calls",
                 r_best, total, calls)
    return CompactionResult(best, r_best, curve[:step], calls)


class SignatureReward:
    """The reward of Algorithm 1 (lines 14-23) on precomputed signatures.

    The splits are plain random ones (`sklearn.model_selection.ShuffleSplit`), not
    stratified: line 16 splits the D chips at random, whatever their labels.

    Parameters
    ----------
    signatures : numpy.ndarray
        float32 (D, N, M): every training chip's outputs on every SID image.
    passed : numpy.ndarray
        bool (D,): the chips' labels.
    splits : int
        I, the random train/validation splits averaged.
    val_fraction : float
        Share of chips in D_val (paper: |D_tr| / |D_val| = 4, i.e. 0.2).
    n_estimators : int
        Boosting rounds of each reward classifier (small: it is trained I times per set).
    resplit : bool
        True: I new splits at every iteration (line 16), seeded from (`seed`, iteration).
        False: I splits drawn once from `seed`, the same at every iteration (the reward is
        then a function of the set alone).
    seed : int
        Seeds the splits and the classifiers.
    """

    def __init__(
        self,
        signatures: np.ndarray,
        passed: np.ndarray,
        *,
        splits: int = 3,
        val_fraction: float = 0.2,
        n_estimators: int = 30,
        resplit: bool = True,
        seed: int = 0,
    ) -> None:
        self.signatures = signatures
        self.passed = np.asarray(passed, dtype=bool)
        self.splits = splits
        self.val_fraction = val_fraction
        self.n_estimators = n_estimators
        self.resplit = resplit
        self.seed = seed
        self._fixed: list[tuple[np.ndarray, np.ndarray]] = []
        if not resplit:  # as drawn before re-splitting existed, to give its results again
            d = self.passed.size
            n_val = max(1, round(val_fraction * d))
            rng = np.random.default_rng([seed, 1])
            orders = [rng.permutation(d) for _ in range(splits)]
            self._fixed = [(order[n_val:], order[:n_val]) for order in orders]

    def splits_at(self, iteration: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The I (train, validation) chip index arrays used at `iteration`."""
        if not self.resplit:
            return self._fixed
        state = int(np.random.SeedSequence([self.seed, 3, iteration]).generate_state(1)[0])
        splitter = ShuffleSplit(n_splits=self.splits, test_size=self.val_fraction,
                                random_state=state)
        return list(splitter.split(np.zeros(self.passed.size)))

    def __call__(self, subset: tuple[int, ...], iteration: int) -> float:
        """Mean validation accuracy in percent over the splits of `iteration` for the image
        set `subset`."""
        features = self.signatures[:, list(subset), :].reshape(self.passed.size, -1)
        total = 0.0
        folds = self.splits_at(iteration)
        for train, val in folds:
            y_train = self.passed[train]
            if y_train.all() or not y_train.any():  # one class only: predict it
                predicted = np.full(val.size, bool(y_train[0]))
            else:
                detector = Detector(n_estimators=self.n_estimators, seed=self.seed)
                predicted = detector.fit(features[train], y_train).predict(features[val])
            total += 100.0 * float((predicted == self.passed[val]).mean())
        return total / len(folds)
