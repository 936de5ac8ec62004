"""The cut-off readings, the split-half ceiling of the truth, and the augmented test set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cimtest.cutoffs import Cutoff, parse_cutoff, pass_fraction
from cimtest.data import Dataset, augment, digits
from cimtest.evaluation.truth import SPLIT_SEED, _first_half, ceiling
from cimtest.exceptions import ConfigError, DataError


def test_readings_of_a_cutoff():
    acc = np.arange(100.0)  # 0..99, no ties
    assert parse_cutoff("a70") == Cutoff("A", 70.0) and parse_cutoff("P70").name == "P70"
    assert pass_fraction(acc, parse_cutoff("A70").accuracy(acc)) == pytest.approx(0.70)
    assert pass_fraction(acc, parse_cutoff("P70").accuracy(acc)) == pytest.approx(0.30)
    assert parse_cutoff("A50").accuracy(acc) == parse_cutoff("P50").accuracy(acc) == 49.5
    for bad in ("50", "A101", "B50", "A-5", ""):
        with pytest.raises(ConfigError, match="--cutoff must look like A50"):
            parse_cutoff(bad)


def test_a_drop_cutoff_counts_down_from_the_ideal_chip():
    acc = np.array([99.5, 98.0, 97.4, 90.0])
    rule = parse_cutoff("D2", drop=True)
    assert rule.name == "D2" and rule.ideal is None
    with pytest.raises(ConfigError, match="ideal chip"):
        rule.accuracy(acc)
    placed = Cutoff("D", 2.0, ideal=99.5)
    assert placed.accuracy(acc) == 97.5 and pass_fraction(acc, placed.accuracy(acc)) == 0.5
    with pytest.raises(ConfigError, match="--cutoff must look like A50"):
        parse_cutoff("D2")  # where the ideal chip is not known, a drop is refused


def test_ties_make_the_pass_fraction_differ_from_p():
    acc = np.array([90.0] * 6 + [99.0] * 4)  # 60 % of the chips tie at 90
    a70 = parse_cutoff("A70").accuracy(acc)
    assert a70 == 90.0 and pass_fraction(acc, a70) == pytest.approx(0.4)


def test_ceiling_is_100_when_chips_are_far_from_the_cutoff():
    correct = np.zeros((20, 100), dtype=bool)
    correct[:10, :95] = True  # ten chips at 95 %, ten at 0 %
    assert ceiling(correct, 50.0) == 100.0


def test_ceiling_is_chance_when_every_chip_sits_on_the_cutoff():
    """Every chip right with probability 1/2 on each image: the halves agree by chance
    (P(same side) = 1/2 for independent halves; 4,000 chips give a standard error of 0.8
    points, so 5 points is over six of them)."""
    rng = np.random.default_rng(0)
    correct = rng.random((4000, 200)) < 0.5
    assert ceiling(correct, 50.0) == pytest.approx(50.0, abs=5.0)


def test_ceiling_keeps_copies_of_one_image_in_one_half():
    """Copies of one image answered alike: with sources the halves hold whole images, so a
    chip right on exactly half the images can land anywhere; without them every image's
    copies fall in both halves and the halves always agree."""
    rng = np.random.default_rng(1)
    per_image = rng.random((500, 20)) < 0.5
    correct = np.tile(per_image, (1, 8))  # 8 copies of each of 20 images
    sources = np.tile(np.arange(20), 8)
    assert ceiling(correct, 50.0, sources=sources) < 80.0
    assert ceiling(correct, 50.0) > ceiling(correct, 50.0, sources=sources)


def _halves_by_permutation(sources: np.ndarray, seed: int) -> np.ndarray:
    """The halves as every documented ceiling drew them, before GroupShuffleSplit."""
    unique = np.unique(sources)
    return np.isin(sources, np.random.default_rng(seed).permutation(unique)[: len(unique) // 2])


def _ceiling_by_permutation(correct: np.ndarray, cutoff: float, sources: np.ndarray) -> float:
    """`ceiling` on those halves: the numbers the docs hold."""
    half = _halves_by_permutation(sources, SPLIT_SEED)
    a, b = 100.0 * correct[:, half].mean(axis=1), 100.0 * correct[:, ~half].mean(axis=1)
    return float(100.0 * ((a > cutoff) == (b > cutoff)).mean())


def test_halves_are_the_documented_draw():
    """GroupShuffleSplit over PCG64 halves 600 random sources (every image its own, copies of
    each, scattered labels) at 600 seeds exactly as the permutation did, and the ceilings of
    random chips on them are the same numbers."""
    rng = np.random.default_rng(3)
    for trial in range(600):
        n = int(rng.integers(2, 2000))
        seed = trial if trial % 2 else int(rng.integers(0, 2**31))
        sources = [np.arange(n), np.repeat(np.arange(n), int(rng.integers(2, 5))),
                   rng.integers(0, 10**6, size=n)][trial % 3]
        if len(np.unique(sources)) < 2:
            continue
        assert np.array_equal(_first_half(sources, seed), _halves_by_permutation(sources, seed))
    correct = rng.random((300, 400)) < 0.9
    sources = np.repeat(np.arange(100), 4)
    for cutoff in (85.0, 89.0, 90.0, 92.0):
        assert ceiling(correct, cutoff, sources=sources) == _ceiling_by_permutation(
            correct, cutoff, sources)


def test_ceiling_refuses_copies_of_one_image():
    with pytest.raises(ConfigError, match="2 or more sources"):
        ceiling(np.ones((3, 4), dtype=bool), 50.0, sources=np.zeros(4, dtype=int))


def test_augment_keeps_originals_labels_and_is_seeded():
    test = digits(8).test
    big = augment(test, 3, seed=4)
    assert len(big) == 3 * len(test) and torch.equal(big.x[: len(test)], test.x)
    assert torch.equal(big.y, test.y.repeat(3))
    assert torch.equal(big.sources, torch.arange(len(test)).repeat(3))
    assert torch.equal(augment(test, 3, seed=4).x, big.x)
    assert not torch.equal(augment(test, 3, seed=5).x, big.x)
    assert not torch.equal(big.x[len(test):2 * len(test)], test.x)  # copies moved
    assert big.subset(torch.tensor([0, 540])).sources.tolist() == [0, 0]
    assert augment(test, 1) is test


def test_augment_refuses_what_it_cannot_copy():
    features = Dataset(torch.zeros(4, 20), torch.zeros(4, dtype=torch.int64), 2,
                       "classification", "features")
    with pytest.raises(DataError, match="images"):
        augment(features, 2)
    with pytest.raises(DataError, match="at least 1"):
        augment(digits(8).test, 0)
