"""accuracy and mean_iou against hand-computed values."""

import pytest
import torch

from cimtest.exceptions import ConfigError
from cimtest.metrics import accuracy, mean_iou


def _one_hot_logits(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits (N, C, H, W) whose argmax over C is `pred` (N, H, W)."""
    return torch.nn.functional.one_hot(pred, num_classes).permute(0, 3, 1, 2).float()


def test_accuracy_in_percent():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, y) == pytest.approx(75.0)


def test_accuracy_rejects_bad_shapes():
    with pytest.raises(ConfigError):
        accuracy(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64))


def test_mean_iou_by_hand():
    y = torch.tensor([[[0, 0], [1, 1]]])
    pred = torch.tensor([[[0, 1], [1, 1]]])
    # class 0: inter 1, union 2 -> 0.5; class 1: inter 2, union 3 -> 2/3; class 2 absent.
    got = mean_iou(_one_hot_logits(pred, 3), y, num_classes=3)
    assert got == pytest.approx((0.5 + 2 / 3) / 2)


def test_mean_iou_pools_over_images_and_is_one_when_perfect():
    y = torch.tensor([[[0, 2]], [[2, 2]]])
    assert mean_iou(_one_hot_logits(y, 3), y, 3) == pytest.approx(1.0)
    pred = torch.tensor([[[0, 2]], [[0, 2]]])
    # class 0: inter 1, union 2; class 2: inter 2, union 3.
    assert mean_iou(_one_hot_logits(pred, 3), y, 3) == pytest.approx((0.5 + 2 / 3) / 2)


def test_mean_iou_rejects_labels_out_of_range():
    y = torch.tensor([[[0, 3]]])
    with pytest.raises(ConfigError):
        mean_iou(torch.zeros(1, 3, 1, 2), y, num_classes=3)
