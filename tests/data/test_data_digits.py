"""The embedded digits default, and the Dataset / DataSplits types it returns."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from cimtest.data import SIZES, Dataset, DataSplits, digits
from cimtest.data.digits import digits_pixels
from cimtest.exceptions import DataError

TASKS = ("classification", "segmentation")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("size", SIZES)
def test_shapes_counts_and_names(size, task):
    splits = digits(size, task)
    channels = 1 if size == 8 else 3
    seg = task == "segmentation"
    assert isinstance(splits, DataSplits)
    for part, n in ((splits.train, 1257), (splits.test, 540)):
        assert part.x.shape == (n, channels, size, size) and part.x.dtype == torch.float32
        assert part.y.shape == ((n, size, size) if seg else (n,)) and part.y.dtype == torch.int64
        assert len(part) == n and part.input_shape == (channels, size, size)
        assert part.num_classes == (11 if seg else 10) and part.task == task
        assert part.name == (f"digits-{size}-seg" if seg else f"digits-{size}")
    assert len(splits.mean) == len(splits.std) == channels


def test_split_is_stratified():
    test = digits(8).test.y
    total = np.bincount(load_digits().target, minlength=10)
    counts = torch.bincount(test, minlength=10).numpy()
    assert counts.sum() == 540
    assert np.all(np.abs(counts - 540 * total / total.sum()) <= 1)


@pytest.mark.parametrize("size", SIZES[1:])
def test_split_is_the_same_at_every_size_and_task(size):
    train8, test8 = digits_pixels(8)
    train, test = digits_pixels(size)
    for native, upscaled in ((train8, train), (test8, test)):
        expected = F.interpolate(native.x, size=(size, size), mode="bilinear", align_corners=False)
        assert torch.equal(upscaled.x, expected.repeat(1, 3, 1, 1))
        assert torch.equal(upscaled.y, native.y)
    seg_test = digits(size, "segmentation").test
    assert torch.equal(seg_test.y.flatten(1).max(dim=1).values, test8.y + 1)


@pytest.mark.parametrize("size", SIZES)
def test_train_split_is_normalised_per_channel(size):
    splits = digits(size)
    x = splits.train.x.double().transpose(0, 1).flatten(1)
    assert torch.allclose(x.mean(dim=1), torch.zeros(len(x), dtype=torch.float64), atol=1e-4)
    assert torch.allclose(
        x.std(dim=1, correction=0), torch.ones(len(x), dtype=torch.float64), atol=1e-3
    )
    raw_test = digits_pixels(size)[1].x
    mean = torch.tensor(splits.mean).reshape(1, -1, 1, 1)
    std = torch.tensor(splits.std).reshape(1, -1, 1, 1)
    assert torch.allclose(splits.test.x, (raw_test - mean) / std, atol=1e-6)


def test_input_range_is_that_of_pixels_0_and_1():
    splits = digits(8)
    low, high = splits.input_range
    assert low == pytest.approx(-splits.mean[0] / splits.std[0])
    assert high == pytest.approx((1 - splits.mean[0]) / splits.std[0])
    assert float(splits.train.x.min()) == pytest.approx(low, abs=1e-5)  # digits hold 0 and 16
    assert float(splits.train.x.max()) == pytest.approx(high, abs=1e-5)


@pytest.mark.parametrize("size", (8, 32))
def test_segmentation_masks(size):
    splits = digits(size, "segmentation")
    raw = digits_pixels(size, "segmentation")[1]
    y = splits.test.y
    assert int(y.min()) == 0 and int(y.max()) <= 10
    assert float((y == 0).double().mean()) > 0.5
    digit = digits(size).test.y.reshape(-1, 1, 1)
    expected = torch.where(raw.x[:, 0] > 0.25, digit + 1, 0)
    assert torch.equal(y, expected)
    assert torch.equal(splits.test.x, digits(size).test.x)


@pytest.mark.parametrize("size", (0, 7, 28, 128, True, 8.5, "8"))
def test_bad_size_raises_naming_the_allowed_sizes(size):
    with pytest.raises(DataError, match="8, 16, 32, 64"):
        digits(size)


def test_bad_task_raises():
    with pytest.raises(DataError, match="classification, segmentation"):
        digits(8, task="detection")


def test_result_is_cached_and_deterministic():
    assert digits(8) is digits(size=8, task="classification")
    first, second = digits_pixels(8), digits_pixels(8)
    assert torch.equal(first[0].x, second[0].x) and torch.equal(first[1].y, second[1].y)


def test_subset_first_n_and_indices():
    test = digits(8).test
    first = test.subset(5)
    assert len(first) == 5 and torch.equal(first.x, test.x[:5]) and first.name == test.name
    picked = test.subset([3, 1, -1])
    assert torch.equal(picked.y, test.y[torch.tensor([3, 1, 539])])
    assert torch.equal(test.subset(torch.tensor([2, 4])).x, test.x[[2, 4]])
    mask = test.y == 0
    assert torch.equal(test.subset(mask).y, test.y[mask])
    assert len(test.subset(0)) == 0 and len(test.subset(540)) == 540 and len(test.subset([])) == 0
    assert torch.equal(test.subset(np.int64(3)).y, test.y[:3])
    seg = digits(8, "segmentation").test.subset([0, 1])
    assert seg.y.shape == (2, 8, 8) and seg.task == "segmentation"


@pytest.mark.parametrize(
    "bad", (-1, 541, [0, 540], torch.tensor([-541]), torch.ones(3) > 0, [0.5], True)
)
def test_subset_out_of_range_raises(bad):
    with pytest.raises(DataError, match="digits-8"):
        digits(8).test.subset(bad)


def test_dataset_checks_its_tensors():
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(DataError, match="float32"):
        Dataset(x.double(), torch.zeros(2, dtype=torch.int64), 2, "classification", "t")
    with pytest.raises(DataError, match="int64"):
        Dataset(x, torch.zeros(2, 4, 4, dtype=torch.int64), 2, "classification", "t")
    with pytest.raises(DataError, match="int64"):
        Dataset(x, torch.zeros(2, dtype=torch.int64), 2, "segmentation", "t")
    with pytest.raises(DataError, match="task"):
        Dataset(x, torch.zeros(2, dtype=torch.int64), 2, "regression", "t")
