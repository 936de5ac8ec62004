"""Shared test fixtures: a toy weight layout, one small instance of every fault kind, a tiny
trained digits classifier and a module:factory version of it for the CLI tests."""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

import pytest
import torch
from hypothesis import settings

from cimtest.faults import (
    PRESETS,
    AdditiveVariation,
    BitFlip,
    Drift,
    LayerSlot,
    LevelFlip,
    MultiplicativeVariation,
    Retention,
    RRAMVariation,
    Scope,
    StuckAt,
    WeightLayout,
)

# Property tests draw the same examples on every run; CIMTEST_HYPOTHESIS=explore draws new
# ones to look for bugs (a failure found so is kept as an ``@example``).
settings.register_profile("seeded", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("CIMTEST_HYPOTHESIS", "seeded"))

TOY_LAYERS = (
    ("conv1", 27, 8, None),
    ("layer1.0.conv2", 72, 8, None),
    ("fc", 16, 10, (8, 8)),
)
"""(name, crossbar rows, crossbar cols, array size or None for one array) of `toy_layout`."""

ALL_FAULTS = [
    BitFlip(p=0.01),
    LevelFlip(p=0.01, bits=2),
    StuckAt(p=0.01, high=0.3),
    MultiplicativeVariation(eta=0.05),
    AdditiveVariation(eta=0.05),
    RRAMVariation(sigma=0.1, lam=0.3),
    BitFlip(p=0.05, scope=Scope(fraction=0.5)),
    MultiplicativeVariation(eta=0.05, scope=Scope(layers=("conv1", "fc")), per_read=True),
    RRAMVariation(sigma=0.1, sys=0.2, cor=0.5, lam=0.3, scope=Scope(fraction=0.4)),
    Drift(t=86400.0),
    Retention(t=3e7, tau=1e7, temp=85.0, bits=2),
    Drift(t=3600.0, nu=0.1, nu_sd=0.05, scope=Scope(fraction=0.5)),
]
"""One small instance of every fault kind, plus scoped and per-read variants."""

ALL_PRESETS = sorted(PRESETS)
"""Every preset name."""


def crossbar_slot(
    name: str,
    offset: int,
    rows: int,
    cols: int,
    array: tuple[int, int] | None = None,
    *,
    max_abs: float = 1.0,
) -> LayerSlot:
    """A layer whose weight j is crossbar cell (j // cols, j % cols), tiled into arrays."""
    ar, ac = array or (rows, cols)
    tr, tc = math.ceil(rows / ar), math.ceil(cols / ac)
    j = torch.arange(rows * cols)
    r, c = j // cols, j % cols
    tile = (r // ar) * tc + c // ac
    index = (tile * ar + r % ar) * ac + c % ac
    return LayerSlot(name, offset, rows * cols, max_abs / 127, max_abs, (tr * tc, ar, ac), index)


def toy_layout(bits_per_cell: int = 1, layers=TOY_LAYERS) -> WeightLayout:
    """A small layout: `layers` of (name, rows, cols, array) with max|W| = 0.5, 1.0, 1.5, ..."""
    slots, offset = [], 0
    for k, (name, rows, cols, array) in enumerate(layers):
        slots.append(crossbar_slot(name, offset, rows, cols, array, max_abs=0.5 * (k + 1)))
        offset += rows * cols
    return WeightLayout(tuple(slots), bits_per_cell)


def generators(count: int, seed: int = 0, first: int = 0) -> list[torch.Generator]:
    """Chip generators ``first .. first + count - 1`` of a population seeded with `seed`."""
    return [
        torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(first, first + count)
    ]


def grid_weights(layout: WeightLayout, chips: int, seed: int = 0) -> torch.Tensor:
    """float32 (chips, P) weights on each layer's int8 grid (random codes times the scale)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for slot in layout.layers:
        codes = torch.randint(-128, 128, (slot.numel,), generator=g).float()
        rows.append(codes * slot.scale)
    return torch.cat(rows).expand(chips, -1).contiguous()


@pytest.fixture(scope="session")
def tiny_classifier():
    """A tiny digits MLP (64-32-10) trained 60 Adam steps, with an ``input_shape`` attribute,
    and ``digits(8)``. Deterministic; shared by the method and report tests (read-only)."""
    from torch import nn

    from cimtest.data import digits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model.input_shape = (1, 8, 8)
    data = digits(8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.train.x), data.train.y).backward()
        opt.step()
    return model, data


MLP_FACTORY = '''
import torch
from torch import nn

def tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model.input_shape = (1, 8, 8)
    return model
'''
"""Source of a module whose ``tiny()`` builds the MLP of `tiny_classifier`."""


@contextmanager
def factory_module(root, module: str, source: str = MLP_FACTORY):
    """Write `source` as `module` in `root` (put on sys.path), train its ``tiny()`` model
    60 Adam steps on the digits and save it as ``root/tiny.safetensors``; yield the model.

    What the CLI tests load as ``module:tiny`` with ``--weights root/tiny.safetensors``.
    """
    import importlib
    import sys

    from safetensors.torch import save_file
    from torch import nn

    from cimtest.data import digits

    (root / f"{module}.py").write_text(source)
    sys.path.insert(0, str(root))
    try:
        model = importlib.import_module(module).tiny()
        data = digits(size=8).train
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(model(data.x), data.y).backward()
            opt.step()
        save_file(model.state_dict(), root / "tiny.safetensors")
        yield model
    finally:
        sys.path.remove(str(root))
