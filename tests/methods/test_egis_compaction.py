"""Algorithm 1 (paper 2): one step's proposal and acceptance rules, the splits of each
iteration, caching only where exact, the best kept."""

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from cimtest.exceptions import ConfigError
from cimtest.methods.compaction import SignatureReward, accept, anneal, iterations, propose


def test_propose_follows_lines_5_to_12():
    """Lines 5-12, read from the paper, not from the code: slot by slot, with probability 1/2
    the slot takes an image drawn uniformly from those not in the NEW set as it stands. From
    {0, 1} in N = 5 that gives these probabilities, written out by hand:

    - (0, 1) kept: 1/2 * 1/2 = 1/4;
    - slot 0 moved to a in {2, 3, 4}, slot 1 kept: 1/2 * 1/3 * 1/2 = 1/12 each;
    - slot 0 kept, slot 1 moved to b in {2, 3, 4}: 1/12 each;
    - both moved: a in {2, 3, 4}, then b among the three images outside {a, 1}, which
      include 0, freed by slot 0: 1/2 * 1/3 * 1/2 * 1/3 = 1/36 each, (a, 0) among them.

    A reading that drew a replacement from the images outside the CURRENT set would never
    give (a, 0); one that drew from all N would keep a slot's own image or repeat one.
    """
    expected = {(0, 1): 1 / 4}
    for a in (2, 3, 4):
        expected[(a, 1)] = expected[(0, a)] = 1 / 12
        for b in (0, 2, 3, 4):
            if b != a:
                expected[(a, b)] = 1 / 36
    assert sum(expected.values()) == pytest.approx(1.0)
    rng, n = np.random.default_rng(5), 20_000
    current = np.array([0, 1])
    seen = Counter(tuple(propose(current, 5, rng).tolist()) for _ in range(n))
    np.testing.assert_array_equal(current, [0, 1])  # the input is not changed
    assert set(seen) == set(expected)  # no other set, and every one of these occurs
    observed = [seen[key] for key in expected]
    # chi-square goodness of fit to the hand-written law; a correct draw fails at 0.1 %
    assert stats.chisquare(observed, [n * p for p in expected.values()]).pvalue > 1e-3


def test_propose_keeps_sets_distinct_and_replaces_half_the_slots():
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(2000):
        cur = rng.choice(6, size=4, replace=False)
        new = propose(cur, 6, rng)
        assert len(set(new.tolist())) == 4 and new.max() < 6
        changed += int((new != cur).sum())
    # a replaced slot may draw an index that equals no other slot but differs from its own
    assert changed / 8000 == pytest.approx(0.5, abs=0.03)


def test_accept_rules():
    rng = np.random.default_rng(1)
    assert accept(80.0, 70.0, 0.5, rng)  # better: always, no draw
    assert accept(80.0, -math.inf, 2.0, rng)
    # worse by 1 point at T = 2: accepted with probability exp(-1 / 2) = 0.607; over 20,000
    # draws the rate's sd is sqrt(0.607 * 0.393 / 20,000) = 0.0035, so 3.29 sd is 0.011
    rng = np.random.default_rng(3)
    rate = np.mean([accept(70.0, 71.0, 2.0, rng) for _ in range(20_000)])
    assert rate == pytest.approx(math.exp(-0.5), abs=3.29 * math.sqrt(0.607 * 0.393 / 20_000))
    # worse at a cold temperature: probability exp(-10 / 0.03) is 0
    assert not accept(60.0, 70.0, 0.03, np.random.default_rng(0))
    equal = [accept(70.0, 70.0, 1.0, np.random.default_rng(s)) for s in range(20)]
    assert all(equal)  # p = exp(0) = 1


def test_anneal_with_fake_reward_is_reproducible_and_caches():
    calls = []

    def reward(subset, iteration):
        calls.append(subset)
        assert subset == tuple(sorted(subset))
        return float(sum(subset))  # best set: the K largest indices

    first = anneal(reward, 20, 3, seed=4, cache=True)
    assert len(calls) == first.evaluations == len(set(calls))
    assert first.reward_curve.shape == (iterations(2.0, 0.03, 0.98), 3)
    assert first.best_reward == max(first.reward_curve[:, 1])
    assert np.all(np.diff(first.reward_curve[:, 2]) >= 0)
    assert first.best_reward >= 51  # 19 + 18 + 17 = 54 is the optimum
    reports = []
    again = anneal(reward, 20, 3, seed=4, cache=True,
                   progress=lambda done, total, stage=None: reports.append((done, total, stage)))
    np.testing.assert_array_equal(first.best, again.best)
    np.testing.assert_array_equal(first.reward_curve, again.reward_curve)
    # the one progress protocol: (done, total, stage) after each iteration, live figures
    total = len(first.reward_curve)
    assert [(done, n) for done, n, _ in reports] == [(i, total) for i in range(1, total + 1)]
    t, _, best = first.reward_curve[-1]
    assert reports[0][2] == f"compaction: T 2.000 best {first.reward_curve[0, 2]:.2f}"
    assert reports[-1][2] == f"compaction: T {t:.3f} best {best:.2f}"


def test_iterations_matches_schedule():
    assert iterations(2.0, 0.03, 0.98) == math.ceil(math.log(0.03 / 2.0) / math.log(0.98))
    with pytest.raises(ConfigError):
        anneal(lambda s, t: 0.0, 3, 3)


def test_signature_reward_sees_the_informative_image():
    rng = np.random.default_rng(0)
    passed = rng.random(120) < 0.5
    signatures = rng.normal(size=(120, 5, 2)).astype(np.float32)
    signatures[:, 2, 0] += 4.0 * passed  # image 2 separates pass from fail
    reward = SignatureReward(signatures, passed, splits=2, n_estimators=10)
    assert reward((2,), 0) > 95.0 > reward((0,), 0)


def noisy_chips(seed: int, d: int = 80, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Signatures (d, n, 3) and labels of chips; images 5 and 9 carry a weak signal."""
    rng = np.random.default_rng(seed)
    passed = rng.random(d) < 0.5
    signatures = rng.normal(size=(d, n, 3)).astype(np.float32)
    signatures[:, 5, 1] += 1.0 * passed
    signatures[:, 9, 0] -= 0.8 * passed
    return signatures, passed


def test_resplit_draws_new_splits_at_each_iteration_and_repeats_them_exactly():
    signatures, passed = noisy_chips(11)
    reward = SignatureReward(signatures, passed, splits=3, n_estimators=5, seed=3)
    for t in (0, 1, 7):
        folds = reward.splits_at(t)
        assert len(folds) == 3
        for train, val in folds:  # ShuffleSplit: ceil(0.2 * 80) = 16 chips validate
            assert val.size == 16 and train.size == 64
            np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(80))
    first, second = reward.splits_at(0), reward.splits_at(1)
    assert not any(np.array_equal(a[1], b[1]) for a in first for b in second)
    same = SignatureReward(signatures, passed, splits=3, n_estimators=5, seed=3)
    for a, b in zip(first, same.splits_at(0)):  # a function of (seed, iteration) only
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    other_seed = SignatureReward(signatures, passed, splits=3, n_estimators=5, seed=4)
    assert not np.array_equal(other_seed.splits_at(0)[0][1], first[0][1])
    # the same set: another reward at another iteration, the very same one at the same
    rewards = [reward((0, 5, 9), t) for t in range(4)]
    assert len(set(rewards)) > 1
    assert [same((0, 5, 9), t) for t in range(4)] == rewards
    # splits drawn once: the same at every iteration, so is the reward
    fixed = SignatureReward(signatures, passed, splits=3, n_estimators=5, seed=3, resplit=False)
    assert fixed.splits_at(0) is fixed.splits_at(9)
    assert fixed((0, 5, 9), 0) == fixed((0, 5, 9), 9)


@pytest.mark.parametrize("resplit", [True, False])
def test_anneal_reuses_a_reward_only_where_it_is_exact(resplit):
    """With new splits per iteration every iteration scores its set afresh; with splits drawn
    once a set is scored once and read back later (exact: that reward does not depend on the
    iteration, test above). Each reward scored is the curve's entry for its iteration and
    what a fresh reward gives that set at that iteration."""
    signatures, passed = noisy_chips(11)
    reward = SignatureReward(signatures, passed, splits=2, n_estimators=5, seed=3,
                             resplit=resplit)
    calls = []

    def recorded(subset, iteration):
        calls.append((subset, iteration))
        return reward(subset, iteration)

    result = anneal(recorded, 16, 3, rho=0.9, seed=2, cache=not resplit)
    fresh = SignatureReward(signatures, passed, splits=2, n_estimators=5, seed=3,
                            resplit=resplit)
    assert len(calls) == result.evaluations
    if resplit:  # one call per iteration, for that iteration, sets that came back included
        assert [t for _, t in calls] == list(range(len(result.reward_curve)))
        assert len({subset for subset, _ in calls}) < len(calls)
    else:  # one call per distinct set; some sets came back and were read from the cache
        assert len({subset for subset, _ in calls}) == len(calls) < len(result.reward_curve)
    for subset, t in calls:
        assert result.reward_curve[t, 1] == fresh(subset, t)


def test_seeded_compaction_is_reproducible():
    signatures, passed = noisy_chips(11)

    def run(seed: int) -> tuple[np.ndarray, np.ndarray]:
        reward = SignatureReward(signatures, passed, splits=2, n_estimators=5, seed=seed)
        result = anneal(reward, 16, 3, rho=0.9, seed=seed)
        return result.best, result.reward_curve

    best, curve = run(2)
    again_best, again_curve = run(2)
    np.testing.assert_array_equal(again_best, best)
    np.testing.assert_array_equal(again_curve, curve)
    assert not np.array_equal(run(5)[1], curve)


def test_splits_drawn_once_keep_the_former_result():
    """resplit=False is the compaction as it was before the splits were redrawn: this input
    gave the set [14, 10, 5], best reward 71.875 and 33 distinct sets (measured on the code
    before the change, whose only mode this was)."""
    signatures, passed = noisy_chips(11)
    reward = SignatureReward(signatures, passed, splits=2, n_estimators=5, seed=3,
                             resplit=False)
    result = anneal(reward, 16, 3, rho=0.9, seed=2, cache=True)
    assert result.best.tolist() == [14, 10, 5]
    assert result.best_reward == 71.875
    assert result.evaluations == 33


@pytest.mark.slow
def test_new_splits_stop_the_annealing_climbing_on_random_labels():
    """Labels that are pure noise: no set predicts them, a fair reward is 50 %.

    With the splits drawn once, the annealing climbs on their luck: the new sets it proposes
    once it has cooled (second half of the iterations) score above chance; with new splits at
    every iteration that luck does not carry over. Measured (D = 60, N = 32, K = 4, I = 3,
    82 iterations) on seeds 0-11: settled reward 56.5 (fixed) against 52.5 (new splits),
    paired difference 4.1 with a per-seed sd of 3.4, new-split level sd 4.4. Over the 8 seeds
    here (57.0 against 52.5, difference 4.5) the mean difference has SE 3.4 / sqrt(8) = 1.2,
    so 0 lies 3.7 SE below it; the new-split level is held within 3 SE (3 x 4.4 / sqrt(8) =
    4.65) of 50. The best reward does not come down with the splits: it is the maximum of 82
    noisy rewards in both modes (seeds 0-11: 75.5 against 72.9, the difference 2.6 +- 8.0 per
    seed, not significant), so it stays above what the set scores on other chips."""
    settled = {False: [], True: []}
    for seed in range(8):
        rng = np.random.default_rng([100, seed])
        passed = rng.random(60) < 0.5
        signatures = rng.normal(size=(60, 32, 3)).astype(np.float32)
        for resplit in (False, True):
            reward = SignatureReward(signatures, passed, n_estimators=10, resplit=resplit,
                                     seed=seed)
            result = anneal(reward, 32, 4, rho=0.95, seed=seed, cache=not resplit)
            new = result.reward_curve[:, 1]
            settled[resplit].append(new[new.size // 2:].mean())
    difference = np.subtract(settled[False], settled[True])
    assert difference.mean() > 0
    assert abs(np.mean(settled[True]) - 50) < 4.65
