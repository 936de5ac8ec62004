"""A larger, fixed evaluation set from a small one: seeded affine copies of each image.

A chip's accuracy on 540 test digits is too coarse a truth near A_cutoff (one image is 0.19
points). `augment` keeps the originals and adds `copies - 1` seeded copies of each image,
each rotated by up to `ROTATION` degrees, scaled by up to `SCALE` and shifted by up to
`SHIFT` pixels (bilinear, edges repeated), the label kept. It is fair to every test: the set
is fixed by its seed before any test is fitted, no test sees it (real-image baselines draw
from other images), and copies of one image are marked as one source (`Dataset.sources`), so
the split-half ceiling never counts a copy as independent of its original.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cimtest.data.dataset import Dataset
from cimtest.exceptions import DataError

__all__ = ["ROTATION", "SCALE", "SHIFT", "augment"]

ROTATION = 12.0
"""Largest rotation, degrees."""
SCALE = 0.1
"""Largest relative change of size."""
SHIFT = 0.5
"""Largest shift, pixels."""


def augment(data: Dataset, copies: int, seed: int = 0) -> Dataset:
    """`data` followed by `copies - 1` seeded affine copies of it (classification, images).

    Parameters
    ----------
    data : Dataset
        Labelled images (N, C, H, W).
    copies : int
        Versions of each image, the original included (1 returns `data`).
    seed : int
        Seed of every copy's rotation, scale and shift.

    Returns
    -------
    Dataset
        copies x N images; ``sources`` gives each one's original.
    """
    if copies < 1:
        raise DataError(f"augment needs at least 1 copy; got {copies}")
    if data.task != "classification" or data.x.dim() != 4:
        raise DataError(f"augment makes copies of labelled images (N, C, H, W); "
                        f"'{data.name}' is {data.task} with inputs {tuple(data.x.shape[1:])}")
    n = len(data)
    base = torch.arange(n) if data.sources is None else data.sources
    if copies == 1:
        return data
    gen = torch.Generator().manual_seed(int(seed))
    extra = (copies - 1) * n
    angle = (torch.rand(extra, generator=gen) * 2 - 1) * math.radians(ROTATION)
    scale = 1 + (torch.rand(extra, generator=gen) * 2 - 1) * SCALE
    shift = (torch.rand(extra, 2, generator=gen) * 2 - 1) * SHIFT
    size = torch.tensor([data.x.shape[3], data.x.shape[2]], dtype=torch.float32)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, 2 * shift[:, 0] / size[0]], dim=1),
                         torch.stack([sin, cos, 2 * shift[:, 1] / size[1]], dim=1)], dim=1)
    x = data.x.repeat(copies - 1, 1, 1, 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return Dataset(torch.cat([data.x, moved]), data.y.repeat(copies), data.num_classes,
                   data.task, f"{data.name} x{copies} (augmented, seed {seed})",
                   base.repeat(copies))
