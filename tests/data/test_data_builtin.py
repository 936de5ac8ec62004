"""The built-in data sets: MNIST-1D generated as its package generates it, MNIST's split, the
dispatch by name and shape, and the disk cache."""

from __future__ import annotations

import importlib
import logging
import random

import numpy as np
import pytest
import torch

from cimtest.data import BUILTIN, builtin_splits, mnist
from cimtest.data.builtin import default_test_size
from cimtest.data.mnist1d import LENGTH, SEEDS, generate
from cimtest.exceptions import DataError

mnist1d_module = importlib.import_module("cimtest.data.mnist1d")  # the module, not the function


@pytest.mark.parametrize("n", [100, 60])
def test_generate_draws_what_make_dataset_draws(n):
    """Known truth: the package's own `make_dataset` with the same seed, once our raw samples
    are standardised with their own statistics as it standardises them."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = n, 7, 1.0
    reference = make_dataset(args)
    x, y = generate(n, 7)
    np.testing.assert_allclose((x - x.mean()) / x.std(), reference["x"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(y, reference["y"])


def test_generate_leaves_the_callers_generators_alone():
    np.random.seed(3)
    random.seed(3)
    expected = (np.random.rand(), random.random())
    np.random.seed(3)
    random.seed(3)
    generate(10, 0)
    assert (np.random.rand(), random.random()) == expected


def test_a_sample_count_off_the_classes_takes_the_first_of_the_next_multiple():
    x, y = generate(23, 5)
    x30, y30 = generate(30, 5)
    np.testing.assert_array_equal(x, x30[:23])
    np.testing.assert_array_equal(y, y30[:23])


def test_mnist1d_sets_are_independent_and_on_the_training_scale():
    splits = builtin_splits("mnist1d", (1, LENGTH), test_size=3_000)
    assert len(set(SEEDS.values())) == 3  # disjoint seeds
    train, pool, test = splits.train, splits.pool, splits.test
    assert train.x.shape[1:] == pool.x.shape[1:] == test.x.shape[1:] == (1, LENGTH)
    assert len(test) == 3_000 and splits.real_pool is pool
    # no sample is shared between sets (independent draws of continuous noise)
    rows = {tuple(r) for r in train.x.reshape(len(train), -1).numpy().round(6)}
    assert not any(tuple(r) in rows for r in test.x.reshape(len(test), -1).numpy().round(6))
    assert float(train.x.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(train.x.std(correction=0)) == pytest.approx(1.0, abs=1e-5)
    # the test set is drawn from the same law: its mean and std within 5 standard errors of
    # the training set's 0 and 1; a sequence's mean (or mean square) varies at most as much
    # as one value, so 1 / sqrt(sequences) bounds that error
    se = 1.0 / np.sqrt(len(test))
    assert abs(float(test.x.mean())) < 5 * se
    assert abs(float(test.x.std()) - 1.0) < 5 * se
    counts = torch.bincount(test.y, minlength=10)
    assert int(counts.min()) == int(counts.max()) == 300  # balanced, as make_dataset


def test_mnist1d_flat_inputs_hold_the_same_samples():
    seq = builtin_splits("mnist1d", (1, LENGTH), test_size=500).test
    flat = builtin_splits("mnist1d", (LENGTH,), test_size=500).test
    assert flat.input_shape == (LENGTH,)
    torch.testing.assert_close(flat.x, seq.x.reshape(500, LENGTH), rtol=0, atol=0)


def test_a_truth_of_another_size_is_another_draw():
    small = builtin_splits("mnist1d", (1, LENGTH), test_size=200).test
    large = builtin_splits("mnist1d", (1, LENGTH), test_size=1_000).test
    assert not torch.equal(small.x, large.x[:200])  # a new permutation: a new truth
    assert len(large) == 1_000


def test_generated_sets_are_cached_and_checked(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CIMTEST_HOME", str(tmp_path))
    first = mnist1d_module._set("test", 50)
    path = tmp_path / "data" / f"mnist1d-test-seed{SEEDS['test']}-n50.safetensors"
    assert path.is_file()
    monkeypatch.setattr(mnist1d_module, "generate", lambda n, seed: pytest.fail("regenerated"))
    again = mnist1d_module._set("test", 50)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # one byte of the samples
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(mnist1d_module, "generate", generate)
    with caplog.at_level(logging.WARNING):
        fixed = mnist1d_module._set("test", 50)
    assert "fails its digest" in caplog.text
    assert torch.equal(fixed[0], first[0])


def test_mnist_is_a_stratified_split_of_the_5000_images():
    splits = mnist()
    assert splits.train.x.shape == (3_500, 1, 28, 28)
    assert splits.test.x.shape == (1_500, 1, 28, 28)
    assert torch.bincount(splits.test.y).tolist() == [150] * 10
    assert float(splits.train.x.mean()) == pytest.approx(0.0, abs=1e-5)
    low, high = splits.input_range
    assert float(splits.train.x.min()) == pytest.approx(low, abs=1e-5)
    assert float(splits.train.x.max()) == pytest.approx(high, abs=1e-5)
    assert builtin_splits("mnist", (1, 28, 28), test_size=100).test.x.shape[0] == 100
    assert len(builtin_splits("mnist", (1, 28, 28), test_size=10**6).test) == 1_500


def test_every_builtin_set_has_a_default_test_size():
    assert [default_test_size(name) for name in BUILTIN] == [540, mnist1d_module.TEST_SIZE,
                                                             1_500]


@pytest.mark.parametrize(("name", "shape", "task", "size", "message"), [
    ("mnist2", (1, 40), "classification", None, "unknown data set 'mnist2'"),
    ("mnist", (1, 40), "classification", None, "comes in inputs (1, 28, 28)"),
    ("mnist1d", (3, 32, 32), "classification", None, "the model takes (3, 32, 32)"),
    ("mnist1d", (1, 40), "segmentation", None, "classification only"),
    ("mnist1d", (1, 40), "classification", 0, "must be positive"),
])
def test_builtin_splits_refuse_what_they_cannot_give(name, shape, task, size, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        builtin_splits(name, shape, task, size)
