"""Quality metrics of model outputs (accuracy, mean IoU) and, later, of tests on chips."""

from __future__ import annotations

import torch

from cimtest.exceptions import ConfigError

__all__ = ["accuracy", "mean_iou"]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the top-1 accuracy of `logits` against labels `y`, in percent.

    Parameters
    ----------
    logits : torch.Tensor
        float (N, C): one row of class scores per sample.
    y : torch.Tensor
        int64 (N,): the true class of each sample.

    Returns
    -------
    float
        100 · (fraction of rows whose argmax equals the label), in [0, 100].

    Raises
    ------
    ConfigError
        If the shapes do not match or N is 0.
    """
    if logits.dim() != 2 or y.shape != logits.shape[:1] or logits.shape[0] == 0:
        raise ConfigError(
            f"accuracy needs logits (N, C) and labels (N,) with N > 0; "
            f"got {tuple(logits.shape)} and {tuple(y.shape)}."
        )
    correct = (logits.argmax(dim=1) == y).sum().item()
    return 100.0 * correct / y.shape[0]


def mean_iou(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Return the mean intersection-over-union of per-pixel predictions, in [0, 1].

    Intersections and unions are summed over every pixel of every image first (dataset-level
    IoU per class), then averaged over the classes present in the prediction or the truth;
    a class absent from both would give 0/0 and is skipped.

    Parameters
    ----------
    logits : torch.Tensor
        float (N, C, H, W): per-pixel class scores; the prediction is the argmax over C.
    y : torch.Tensor
        int64 (N, H, W): the true class of each pixel, in ``[0, num_classes)``.
    num_classes : int
        Number of classes, at least C.

    Raises
    ------
    ConfigError
        If the shapes do not match, the batch is empty, or a label is out of range.
    """
    if (
        logits.dim() != 4
        or y.shape != logits.shape[:1] + logits.shape[2:]
        or logits.shape[0] == 0
        or logits.shape[1] > num_classes
    ):
        raise ConfigError(
            f"mean_iou needs logits (N, C, H, W), labels (N, H, W) with N > 0 and "
            f"C <= num_classes={num_classes}; got {tuple(logits.shape)} and {tuple(y.shape)}."
        )
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ConfigError(f"mean_iou: labels must be in [0, {num_classes}).")
    pred = logits.argmax(dim=1).reshape(-1)
    truth = y.reshape(-1)
    pred_count = torch.bincount(pred, minlength=num_classes)
    true_count = torch.bincount(truth, minlength=num_classes)
    inter = torch.bincount(truth[pred == truth], minlength=num_classes)
    union = pred_count + true_count - inter
    present = union > 0
    return (inter[present].double() / union[present].double()).mean().item()
