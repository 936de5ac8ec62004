"""Training runs are bit-reproducible for a seed and report finite metrics (tiny runs only)."""

import math

import pytest
import torch

from cimtest.exceptions import ConfigError
from cimtest.fingerprint import state_fingerprint
from cimtest.zoo import get_entry, train, train_group
from cimtest.zoo.training import RECIPES, _shift


def _equal_states(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", ["mlp-8", "lenet5-8", "cnn-mnist1d"])
def test_same_seed_gives_bit_identical_weights(name):
    calls = []
    first = train(name, epochs=2, train_subset=200, progress=lambda *a: calls.append(a))
    second = train(name, epochs=2, train_subset=200)
    assert _equal_states(first.model, second.model)
    assert first.metadata["fingerprint"] == state_fingerprint(second.model)
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)]
    assert set(calls[-1][2]) >= {"loss", "metric"}
    other = train(name, epochs=2, train_subset=200, seed=1)
    assert not _equal_states(first.model, other.model)


def test_metadata_describes_the_run():
    result = train("mlp-8", epochs=1, train_subset=100, seed=5)
    meta = result.metadata
    assert not result.model.training
    assert meta["name"] == "mlp-8" and meta["arch"] == "mlp" and meta["seed"] == 5
    assert meta["metric"] == "accuracy" and 0.0 <= meta["value"] <= 100.0
    assert meta["epochs"] == 1 and meta["train_size"] == 100
    assert meta["input_shape"] == [1, 8, 8] and meta["task"] == "classification"
    assert meta["recipe"]["optimiser"] == RECIPES["mlp"].optimiser
    assert meta["fingerprint"] == state_fingerprint(result.model)
    assert meta["train_seconds"] >= 0 and meta["torch"] == torch.__version__


def test_segmentation_reports_mean_iou():
    result = train("fcn-8", epochs=1, train_subset=64)
    assert result.metadata["metric"] == "mean_iou"
    assert 0.0 <= result.metadata["value"] <= 1.0


def test_gan_trains_both_halves_into_the_data_range():
    results = train_group("dcgan-d-8", epochs=1, train_subset=64)
    assert set(results) == {"dcgan-g-8", "dcgan-d-8"}
    meta = results["dcgan-g-8"].metadata
    assert meta["metric"] == "d_accuracy" and math.isfinite(meta["value"])
    generator = results["dcgan-g-8"].model
    with torch.no_grad():
        images = generator(torch.randn(4, *get_entry("dcgan-g-8").input_shape))
    low, high = generator.to_range.low.item(), generator.to_range.high.item()
    assert low < 0 < high and (low, high) != (-1.0, 1.0)
    assert images.min() >= low - 1e-5 and images.max() <= high + 1e-5


def test_shift_moves_labels_with_images():
    y = 1 + torch.arange(16).reshape(1, 4, 4).repeat(8, 1, 1)
    x = y.unsqueeze(1).float()
    background = torch.full((1, 1, 1, 1), -1.0)
    xs, ys = _shift(x, y, 0.25, background, torch.Generator().manual_seed(0))
    assert torch.equal((xs[:, 0] == -1.0), (ys == 0))
    assert torch.equal(xs[:, 0][ys > 0], ys[ys > 0].float())
    assert not torch.equal(ys, y)
    assert ((ys[:, 1:, :] - ys[:, :-1, :] == 4) | (ys[:, 1:, :] == 0) | (ys[:, :-1, :] == 0)).all()


def test_bad_overrides_are_config_errors():
    with pytest.raises(ConfigError):
        train("mlp-8", epochs=0)
