"""The batched engine against the slow reference path, seeding, chunking and per-read draws."""

import dataclasses

import pytest
import torch
from conftest import ALL_FAULTS
from torch import nn

from cimtest.engine import BatchedForward, Population, chip_generators, chip_seed
from cimtest.engine.reference import reference_forward
from cimtest.engine.rows import fill_rows
from cimtest.exceptions import ConfigError
from cimtest.faults import FaultStack, Scope, parse_spec


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(x + self.bn(self.conv(x)))


class EveryLayerKind(nn.Module):
    """Plain, depthwise and grouped conv, BN, a residual block, Conv1d, transposed conv, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 8, 1, groups=4)
        self.block = Residual(8)
        self.conv1d = nn.Conv1d(8, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2, groups=2)
        self.head = nn.Linear(4 * 16 * 16, 10)

    def forward(self, x):
        x = self.block(self.grouped(self.depthwise(self.stem(x))))
        n, c, h, w = x.shape
        x = self.conv1d(x.reshape(n, c, h * w)).reshape(n, 4, h, w)
        return self.head(torch.flatten(self.up(x), 1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = EveryLayerKind().eval()
    for bn in (m.stem[1], m.block.bn):
        bn.running_mean.normal_(0, 0.1)
        bn.running_var.uniform_(0.5, 2.0)
    return m


X = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("fault", ALL_FAULTS, ids=lambda f: f.spec())
def test_batched_equals_reference_for_every_fault(model, fault):
    if fault.scope.layers is not None:  # ALL_FAULTS names layers of the toy layout
        fault = dataclasses.replace(fault, scope=Scope(layers=("stem.0", "up")))
    population = Population(model, "none", seed=11, n=4, array_size=(16, 8))
    flat = population.weights(range(4))
    FaultStack((fault,)).apply(flat, population.layout, chip_generators(11, range(4)))
    assert not torch.equal(flat, population.weights(range(4)))
    batched = BatchedForward(population.mapped)(flat, X)
    reference = reference_forward(population.mapped, flat, X)
    assert batched.shape == (4, 6, 10)
    assert torch.allclose(batched, reference, atol=1e-5, rtol=0)


def test_ideal_population_is_the_ideal_chip(model):
    population = Population(model, "none", n=3)
    out = population.outputs(X)
    assert torch.allclose(out, population.mapped.ideal(X).expand(3, -1, -1), atol=1e-6)


@pytest.mark.invariance
@pytest.mark.parametrize("spec", ["mult:eta=0.2", "bitflip:p=0.01+add:eta=0.05",
                                  "rram:sigma=0.2,sys=0.25,cor=0.25,lambda=0.5"])
def test_results_identical_whatever_the_chunk_size(model, spec):
    big = Population(model, spec, seed=5, n=20, memory="1GB")
    small = Population(model, spec, seed=5, n=20, memory=1)  # one micro-batch per chunk
    assert small.chips_per_chunk((1, 8, 8), 6) == 8 and big.chips_per_chunk((1, 8, 8), 6) == 16
    everyone = big.outputs(X)
    assert torch.equal(everyone, small.outputs(X))
    assert torch.equal(everyone[13:14], big.outputs(X, chips=[13]))  # a chip alone
    y = torch.arange(6) % 10
    assert torch.equal(big.accuracy(X, y), small.accuracy(X, y))


@pytest.mark.invariance
@pytest.mark.parametrize("spec", ["mult:eta=0.1+bitflip:p=1e-3", "stuck:p=0.01@layers=0.5",
                                  "rram:sigma=0.2,lambda=0.5+add:eta=0.05@per-read"])
def test_weights_identical_whatever_the_thread_count(model, spec):
    """Blocks of chips are drawn on torch's threads; each chip's row must not depend on it."""
    population = Population(model, spec, seed=2, n=23)
    threads = torch.get_num_threads()
    try:
        rows = {}
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            static = population.weights(range(23))
            per_read = fill_rows(torch.empty_like(static), static, population._per_read,
                                 population.layout, chip_generators(2, range(23), 1))
            rows[count] = (static, per_read)
    finally:
        torch.set_num_threads(threads)
    for count in (2, 3):
        assert torch.equal(rows[count][0], rows[1][0])
        assert torch.equal(rows[count][1], rows[1][1])
    assert torch.equal(rows[1][0], rows[1][1]) == (not population._per_read.faults)


def test_any_chip_reproducible_alone(model):
    population = Population(model, "mult:eta=0.1+bitflip:p=1e-3", seed=9, n=6)
    everyone = population.weights(range(6))
    assert torch.equal(population.weights([4]), everyone[4:5])
    assert not torch.equal(everyone[0], everyone[1])
    other_seed = Population(model, "mult:eta=0.1+bitflip:p=1e-3", seed=10, n=6)
    assert not torch.equal(other_seed.weights([4]), everyone[4:5])


def test_per_read_faults_are_redrawn_at_every_forward(model):
    population = Population(model, "mult:eta=0.1@per-read", seed=1, n=2)
    same = X[:1].expand(4, -1, -1, -1)
    out = population.outputs(same)
    assert not torch.equal(out[0, 0], out[0, 1])  # same input, another read
    assert torch.equal(out, population.outputs(same))  # reproducible from the seed
    static = Population(model, "mult:eta=0.1", seed=1, n=2).outputs(same)
    assert torch.equal(static[0, 0], static[0, 1])


@pytest.mark.parametrize("spec", ["rram:sigma=0.2,sys=0.25,cor=0.25,lambda=0.5",
                                  "bitflip:p=1e-3", "mult:eta=0.1+add:eta=0.05@per-read"])
def test_outputs_each_equals_one_outputs_per_input_set(model, spec):
    """Dense, sparse and per-read paths: one draw per chip, the same outputs as drawing it
    again for every input set (per-read draws restart at each set)."""
    population = Population(model, spec, seed=4, n=10, memory=1)  # several chunks
    sets = [X[:2], X[2:4], X[4:6]]
    chips = [7, 1, 3, 9, 0]
    each = population.outputs_each(sets, chips=chips)
    assert len(each) == 3
    for x, out in zip(sets, each, strict=True):
        assert torch.equal(out, population.outputs(x, chips=chips))
    assert not torch.equal(each[0], each[1])


def test_chip_seeds_are_distinct_and_stable():
    seeds = {chip_seed(0, i) for i in range(1000)} | {chip_seed(1, i) for i in range(1000)}
    assert len(seeds) == 2000
    assert chip_seed(0, 5) == chip_seed(0, 5) != chip_seed(0, 5, read=1)
    assert 0 <= chip_seed(2**40, 2**40) < 2**63


def test_spec_errors_surface_at_population(model):
    with pytest.raises(ConfigError, match="nope"):
        Population(model, "bitflip:p=0.1@layers=nope")
    with pytest.raises(ConfigError, match="memory"):
        Population(model, "none", memory="lots")


def test_segmentation_scores_are_mean_iou_percent():
    from cimtest.engine import chip_accuracies

    y = torch.tensor([[[0, 1], [1, 1]]])
    perfect = torch.nn.functional.one_hot(y, 2).permute(0, 3, 1, 2).float().unsqueeze(0)
    assert chip_accuracies(perfect, y, "segmentation").tolist() == [100.0]
    assert parse_spec("none").faults == ()


@pytest.mark.invariance
@pytest.mark.parametrize("name", ["resnet20-8", "mobilenet-v2-8", "lenet5-8", "unet-8"])
@pytest.mark.parametrize("n_inputs", [1, 4])
def test_zoo_chips_identical_whatever_the_chunk_size(name, n_inputs):
    """Bit-identical outputs for chunks of 8 or 16 chips and a chip alone, on the paths of
    small inputs (patch matmuls under vmap) of real architectures."""
    from cimtest.zoo import get_entry

    entry = get_entry(name)
    x = torch.randn(n_inputs, *entry.input_shape, generator=torch.Generator().manual_seed(0))
    big = Population(entry.build(), "mult:eta=0.1", seed=5, n=16, memory="4GB")
    small = Population(entry.build(), "mult:eta=0.1", seed=5, n=16, memory=1)
    everyone = big.outputs(x)
    assert torch.equal(everyone, small.outputs(x))
    assert torch.equal(everyone[11:12], big.outputs(x, chips=[11]))


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "bias", "n", "side"), [
    (3, 1, 1, 1, True, 1, 8), (3, 2, 1, 1, False, 2, 8), (1, 1, 0, 1, True, 4, 4),
    (5, 1, 2, 1, True, 1, 6), (3, 1, 2, 2, True, 1, 5), (3, 1, 1, 1, True, 4, 8),
])
def test_patch_matmul_conv_equals_the_convolution(kernel, stride, padding, dilation, bias, n,
                                                  side):
    from cimtest.engine.batched import _PatchMatmulConv2d

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, kernel, stride, padding, dilation, bias=bias)
    x = torch.randn(n, 3, side, side)
    expected = conv(x)
    conv.__class__ = _PatchMatmulConv2d
    assert torch.allclose(conv(x), expected, atol=1e-5)


@pytest.mark.parametrize(("kernel", "stride", "padding", "output_padding", "dilation", "n",
                          "side"), [
    (2, 1, 0, 0, 1, 1, 1), (4, 2, 1, 0, 1, 1, 2), (3, 2, 1, 1, 2, 2, 3), (2, 2, 0, 0, 1, 3, 4),
    (3, 1, 1, 0, 1, 1, 8),
])
def test_patch_matmul_transposed_conv_equals_the_convolution(kernel, stride, padding,
                                                             output_padding, dilation, n, side):
    from cimtest.engine.batched import _PatchMatmulConvTranspose2d

    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(6, 5, kernel, stride, padding, output_padding,
                                    dilation=dilation)
    x = torch.randn(n, 6, side, side)
    expected = conv(x)
    conv.__class__ = _PatchMatmulConvTranspose2d
    assert torch.allclose(conv(x), expected, atol=1e-5)


def test_input_macs_counts_each_layers_multiply_accumulates():
    """Linear 13 -> 37 -> 3: 13*37 + 37*3; a 3x3 conv 2 -> 4 on 5x5 (padding 1): 25*4*2*9."""
    from cimtest.engine.batched import input_macs

    mlp = nn.Sequential(nn.Linear(13, 37), nn.ReLU(), nn.Linear(37, 3))
    assert input_macs(mlp, (13,)) == 13 * 37 + 37 * 3
    assert input_macs(nn.Conv2d(2, 4, 3, padding=1), (2, 5, 5)) == 25 * 4 * 2 * 9


def test_chips_run_dense_from_enough_inputs_or_enough_work(model, monkeypatch):
    """`dense` switches at `DENSE_INPUTS` inputs or `DENSE_WORK` multiply-accumulates per
    chip, and both paths compute the reference outputs."""
    from cimtest.engine import batched

    population = Population(model, "mult:eta=0.1", seed=2, n=5)
    forward = population._forward
    macs = batched.input_macs(model, (1, 8, 8))
    assert not forward.dense((3, 1, 8, 8))
    assert forward.dense((batched.DENSE_INPUTS, 1, 8, 8))
    monkeypatch.setattr(batched, "DENSE_WORK", 3 * macs)
    assert forward.dense((3, 1, 8, 8)) and not forward.dense((2, 1, 8, 8))
    flat = population.weights(range(5))
    expected = reference_forward(population.mapped, flat, X[:3])
    assert torch.allclose(forward(flat, X[:3]), expected, atol=1e-5, rtol=0)
    monkeypatch.setattr(batched, "DENSE_WORK", 4 * macs)
    assert torch.allclose(forward(flat, X[:3]), expected, atol=1e-5, rtol=0)
