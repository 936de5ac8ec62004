"""Small models as a user brings them: a `module:factory` written to a folder, safetensors
weights trained with plain torch on inputs in [0, 1], and an `.npz` of labelled test data.

Three input ranks: ``seq`` (Conv1d + BatchNorm1d, grouped, strided and dilated, on (1, 64)
sequences), ``branchy`` (Conv2d: grouped, depthwise, dilated and strided, BatchNorm2d, two
concatenated branches, on (3, 16, 16) images) and ``mlp`` (Linear only, no normalisation,
on (20,) feature vectors). None has an ``input_shape`` attribute: cimtest must infer it.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

SOURCE = '''
import torch
from torch import nn


def seq():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 8, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(),
        nn.AdaptiveAvgPool1d(4), nn.Flatten(), nn.Linear(32, 4))


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU())
        self.grouped = nn.Conv2d(12, 12, 3, padding=1, groups=3)
        self.depthwise = nn.Conv2d(12, 12, 3, padding=2, dilation=2, groups=12)
        self.down = nn.Conv2d(24, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.grouped(x).relu(), self.depthwise(x).relu()], dim=1)
        return self.head(self.down(x).relu().mean(dim=(2, 3)))


def branchy():
    torch.manual_seed(0)
    return Branchy()


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
'''

SHAPES = {"seq": (1, 64), "branchy": (3, 16, 16), "mlp": (20,)}
"""Each factory's input shape (what cimtest must infer)."""
CLASSES = {"seq": 4, "branchy": 4, "mlp": 3}


def make_data(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` labelled float32 inputs in [0, 1] of factory `name`'s shape, classes balanced.

    seq: a bump at one of 4 places on noise; branchy: a bright quadrant on noise; mlp: one
    of 3 blobs in 20 dimensions.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES[name]
    rng.shuffle(y)
    if name == "seq":
        x = 0.3 * rng.random((n, 1, 64))
        for i, label in enumerate(y):
            x[i, 0, 16 * label + 4: 16 * label + 12] += 0.7
    elif name == "branchy":
        x = 0.3 * rng.random((n, 3, 16, 16))
        for i, label in enumerate(y):
            r, c = divmod(int(label), 2)
            x[i, :, 8 * r: 8 * r + 8, 8 * c: 8 * c + 8] += 0.7
    else:
        centres = np.random.default_rng(99).random((3, 20))
        x = np.clip(centres[y] + 0.08 * rng.standard_normal((n, 20)), 0, 1)
    return x.astype(np.float32), y.astype(np.int64)


@dataclass(frozen=True)
class UserModel:
    """One trained factory: CLI arguments, paths and the module itself."""

    name: str
    spec: str
    weights: Path
    data: Path
    real: Path
    module: nn.Module

    @property
    def args(self) -> list[str]:
        """MODEL and --weights as the CLI takes them."""
        return [self.spec, "--weights", str(self.weights)]


def build(root: Path, module: str = "usermodels_src", steps: int = 60) -> dict[str, UserModel]:
    """Write the factories as `module` in `root` (prepended to sys.path; the caller removes
    it), train each `steps` Adam steps on 256 inputs, save weights, test data (120 inputs)
    and a separate pool of real images (64 inputs); return them by factory name."""
    (root / f"{module}.py").write_text(SOURCE)
    sys.path.insert(0, str(root))
    source = importlib.import_module(module)
    built = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: two threads only wait on each other on a busy machine
    try:
        for name in SHAPES:
            built[name] = _train(root, module, source, name, steps)
    finally:
        torch.set_num_threads(threads)
    return built


def _train(root: Path, module: str, source, name: str, steps: int) -> UserModel:
    from safetensors.torch import save_file

    model = getattr(source, name)()
    x, y = (torch.from_numpy(a) for a in make_data(name, 256, seed=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    save_file(model.state_dict(), root / f"{name}.safetensors")
    x_test, y_test = make_data(name, 120, seed=2)
    np.savez(root / f"{name}.npz", x=x_test, y=y_test)
    x_real, y_real = make_data(name, 64, seed=3)
    np.savez(root / f"{name}-real.npz", x=x_real, y=y_real)
    return UserModel(name, f"{module}:{name}", root / f"{name}.safetensors",
                     root / f"{name}.npz", root / f"{name}-real.npz", model)
