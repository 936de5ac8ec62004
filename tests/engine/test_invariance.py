"""A chip's outputs are bit-identical whatever its chunk, its place in it and the thread count.

Run by `make test` twice: with the math libraries held to AVX2 (cimtest's default on x86-64)
and with their native kernels (``CIMTEST_KERNELS=native``), AVX-512 where the CPU has it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cimtest._reproducible import mkl_strict, portable
from cimtest.engine import Population

pytestmark = pytest.mark.invariance


class Sequence1d(nn.Module):
    """A user-style Conv1d network on (1, 64) sequences, odd channel counts, no BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 5, 7, padding=3)
        self.down = nn.Conv1d(5, 3, 5, stride=2)
        self.head = nn.Linear(3 * 30, 7)

    def forward(self, x):
        x = torch.relu(self.down(torch.relu(self.conv(x))))
        return self.head(torch.flatten(x, 1))


class Branches(nn.Module):
    """Grouped and dilated branches concatenated, then a strided conv; no BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(3, 6, 3, padding=1, groups=3)
        self.dilated = nn.Conv2d(3, 5, 3, padding=2, dilation=2)
        self.strided = nn.Conv2d(11, 7, 3, stride=2, padding=1)
        self.head = nn.Linear(7 * 4 * 4, 10)

    def forward(self, x):
        x = torch.cat([torch.relu(self.grouped(x)), torch.relu(self.dilated(x))], 1)
        return self.head(torch.flatten(torch.relu(self.strided(x)), 1))


class InvertedResidual(nn.Module):
    """MobileNet-style: 1x1 expansion, depthwise 3x3, 1x1 projection, BatchNorm, residual."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(16, 32, 1, bias=False)
        self.bn = nn.BatchNorm2d(32)
        self.depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.project = nn.Conv2d(32, 16, 1)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        y = self.project(torch.relu(self.depthwise(torch.relu(self.bn(self.expand(x))))))
        return self.head((x + y).mean((2, 3)))


class Tabular(nn.Module):
    """Linear layers on rank-1 inputs of 13 features."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(13, 37)
        self.out = nn.Linear(37, 3)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


class Wide(nn.Module):
    """Wide 3x3 convolutions on 3x32x32 images (~58 M multiply-accumulates per input), no
    BatchNorm: a few inputs per chip already run as dense forwards (`DENSE_WORK`)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, 64, 3, padding=1)
        self.down = nn.Conv2d(64, 128, 3, stride=2, padding=1)
        self.last = nn.Conv2d(128, 128, 3, padding=1)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.relu(self.last(torch.relu(self.down(torch.relu(self.first(x))))))
        return self.head(x.mean((2, 3)))


USER_MODELS = {
    "conv1d": (Sequence1d, (1, 64)),
    "branches": (Branches, (3, 8, 8)),
    "inverted-residual": (InvertedResidual, (16, 8, 8)),
    "tabular": (Tabular, (13,)),
}
ZOO_MODELS = ("lenet5-8", "mobilenet-v2-8", "unet-8", "dcgan-g-8")


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    if name in USER_MODELS:
        cls, shape = USER_MODELS[name]
        torch.manual_seed(0)
        model = cls().eval()
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
        return model, shape
    from cimtest.zoo import get_entry

    entry = get_entry(name)
    return entry.build(), entry.input_shape


def test_math_libraries_are_pinned():
    assert mkl_strict() in (True, None)  # None: a torch without MKL
    if portable():
        assert torch.backends.cpu.get_cpu_capability() in ("AVX2", "DEFAULT", "NO AVX")


@pytest.mark.parametrize("n_inputs", [1, 3, 130], ids=lambda n: f"{n}in")
@pytest.mark.parametrize("name", [*USER_MODELS, *ZOO_MODELS])
def test_chip_outputs_do_not_depend_on_chunk_position_or_threads(name, n_inputs):
    """Chip 11 alone, at each place of a chunk of 8, in a chunk of 16, on 1, 2, 3 and 8
    threads (8 caught MKL's small products on AMD and oneDNN's transposed convolution).

    One input per chip takes the patch-matmul path, 3 the grouped convolutions, 130 the
    dense per-chip forward (`DENSE_INPUTS`)."""
    model, shape = build(name)
    x = torch.randn(n_inputs, *shape, generator=torch.Generator().manual_seed(0))
    population = Population(model, "mult:eta=0.1", seed=5, n=16, memory="4GB")
    expected = population.outputs(x, chips=[11])[0]
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3, 8):
            torch.set_num_threads(count)
            for place in (0, 1, 2, 3, 6):
                chips = [c for c in range(8) if c != 11][:7]
                chips.insert(place, 11)
                assert torch.equal(population.outputs(x, chips=chips)[place], expected), \
                    (count, place)
            assert torch.equal(population.outputs(x)[11], expected), count
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("spec", ["bitflip:p=1e-4", "bitflip:p=1e-4@per-read"])
@pytest.mark.parametrize("name", ["branches", "lenet5-8"])
def test_sparse_path_outputs_do_not_depend_on_chunk_or_threads(name, spec):
    model, shape = build(name)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    population = Population(model, spec, seed=3, n=24, memory="4GB")
    assert population.sparse
    expected = population.outputs(x)
    threads = torch.get_num_threads()
    try:
        for count in (1, 3, 8):
            torch.set_num_threads(count)
            assert torch.equal(population.outputs(x, chips=[13])[0], expected[13]), count
            assert torch.equal(population.outputs(x, chips=range(9, 24)), expected[9:]), count
    finally:
        torch.set_num_threads(threads)


def test_dense_forwards_of_a_few_inputs_do_not_depend_on_chunk_position_or_threads():
    """Two inputs of a wide model are enough work to run as dense forwards, where oneDNN's
    small-batch convolutions round differently with the thread count: one chip per thread
    keeps every chip's bits."""
    torch.manual_seed(0)
    model = Wide().eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    population = Population(model, "mult:eta=0.1", seed=5, n=12, memory="4GB")
    assert population._forward.dense(tuple(x.shape))
    expected = population.outputs(x, chips=[9])[0]
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3, 8):
            torch.set_num_threads(count)
            assert torch.equal(population.outputs(x, chips=[4, 9, 2])[1], expected), count
            assert torch.equal(population.outputs(x)[9], expected), count
    finally:
        torch.set_num_threads(threads)


def test_transposed_convolutions_do_not_depend_on_eight_threads():
    """oneDNN's transposed convolution rounded differently on 8 threads than on 1-4 (the
    DCGAN generator at one input); small ones now run as matmuls and `F.fold`."""
    model, shape = build("dcgan-g-8")
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    population = Population(model, "mult:eta=0.1", seed=5, n=16, memory="4GB")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        expected = population.outputs(x)
        torch.set_num_threads(8)
        assert torch.equal(population.outputs(x), expected)
    finally:
        torch.set_num_threads(threads)
