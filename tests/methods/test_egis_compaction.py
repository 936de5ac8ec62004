"""Algorithm 1 (paper 2): one step's proposal and acceptance rules, caching, the best kept."""

import math

import numpy as np
import pytest

from cimtest.exceptions import ConfigError
from cimtest.methods.compaction import SignatureReward, accept, anneal, iterations, propose


def test_propose_follows_lines_5_to_12():
    current = np.array([3, 7, 9])
    rng = np.random.default_rng(5)
    new = propose(current, 12, rng)
    # replay the same draws by hand: per slot one uniform, and an index if it is < 0.5
    ref = np.random.default_rng(5)
    expected = current.copy()
    for k in range(3):
        if ref.random() < 0.5:
            free = np.setdiff1d(np.arange(12), expected)
            expected[k] = free[ref.integers(free.size)]
    np.testing.assert_array_equal(new, expected)
    np.testing.assert_array_equal(current, [3, 7, 9])  # the input is not changed


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
    ref = np.random.default_rng(3)
    rng = np.random.default_rng(3)
    u = ref.random()
    p = math.exp((70.0 - 71.0) / 2.0)
    assert accept(70.0, 71.0, 2.0, rng) == (u < p)
    # worse at a cold temperature: probability exp(-10 / 0.03) is 0
    assert not accept(60.0, 70.0, 0.03, np.random.default_rng(0))
    equal = [accept(70.0, 70.0, 1.0, np.random.default_rng(s)) for s in range(20)]
    assert all(equal)  # p = exp(0) = 1


def test_anneal_with_fake_reward_is_reproducible_and_caches():
    calls = []

    def reward(subset):
        calls.append(subset)
        assert subset == tuple(sorted(subset))
        return float(sum(subset))  # best set: the K largest indices

    first = anneal(reward, 20, 3, seed=4)
    assert len(calls) == first.evaluations == len(set(calls))
    assert first.reward_curve.shape == (iterations(2.0, 0.03, 0.98), 3)
    assert first.best_reward == max(first.reward_curve[:, 1])
    assert np.all(np.diff(first.reward_curve[:, 2]) >= 0)
    assert first.best_reward >= 51  # 19 + 18 + 17 = 54 is the optimum
    reports = []
    again = anneal(reward, 20, 3, seed=4,
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
        anneal(lambda s: 0.0, 3, 3)


def test_signature_reward_sees_the_informative_image():
    rng = np.random.default_rng(0)
    passed = rng.random(120) < 0.5
    signatures = rng.normal(size=(120, 5, 2)).astype(np.float32)
    signatures[:, 2, 0] += 4.0 * passed  # image 2 separates pass from fail
    reward = SignatureReward(signatures, passed, splits=2, n_estimators=10)
    assert reward((2,)) > 95.0 > reward((0,))
