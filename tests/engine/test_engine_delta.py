"""The sparse path: SparseEdits against dense rows, DeltaForward against the reference path,
when a population takes it, chunk invariance on it, and the vectorised chip seeds."""

import numpy as np
import pytest
import torch
from torch import nn

from cimtest import zoo
from cimtest.engine import Population, chip_generators, chip_seed
from cimtest.engine.delta import DeltaForward
from cimtest.engine.reference import reference_forward
from cimtest.engine.rows import sparse_rows
from cimtest.engine.seeding import chip_seeds
from cimtest.faults import SparseEdits, parse_spec


class DeltaLayerKinds(nn.Module):
    """Every layer kind the sparse corrections cover: plain, padded-dilated depthwise,
    strided grouped and 1x1 convs, grouped and dilated transposed convs, Conv1d, BN, a
    residual add, linear on 3-D inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.depthwise = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.grouped = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=False)
        self.point = nn.Conv2d(8, 8, 1)
        self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.down = nn.ConvTranspose2d(6, 8, 2, padding=2, dilation=2, bias=False)
        self.conv1d = nn.Conv1d(8, 4, 3, padding=1)
        self.mix = nn.Linear(36, 6)
        self.head = nn.Linear(4 * 6, 10)

    def forward(self, x):
        x = self.grouped(self.depthwise(self.stem(x)))
        x = torch.relu(x + self.point(x))  # (n, 8, 4, 4)
        x = self.down(torch.relu(self.up(x)))  # (n, 8, 6, 6)
        x = self.mix(self.conv1d(x.flatten(2)))
        return self.head(x.flatten(1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = DeltaLayerKinds().eval()
    m.stem[1].running_mean.normal_(0, 0.1)
    m.stem[1].running_var.uniform_(0.5, 2.0)
    return m


SPARSE_SPECS = [
    "bitflip:p=0.01",
    "levelflip:p=0.02,bits=2",
    "stuck:p=0.01,high=0.3",
    "bitflip:p=0.05@layers=0.5",
    "stuck:p=0.02@layers=point,mix+bitflip:p=0.01",
]
X = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("spec", SPARSE_SPECS)
def test_sparse_edits_are_the_dense_rows(model, spec):
    population = Population(model, spec, seed=3, n=13, bits_per_cell=2)
    edits = sparse_rows(population.mapped.reference, population.faults, population.layout,
                        chip_generators(3, range(13)))
    assert edits.keys.numel() > 0
    assert torch.equal(edits.dense(), population.weights(range(13)))


@pytest.mark.parametrize("spec", SPARSE_SPECS)
def test_delta_forward_equals_reference(model, spec):
    population = Population(model, spec, seed=3, n=5, bits_per_cell=2)
    edits = sparse_rows(population.mapped.reference, population.faults, population.layout,
                        chip_generators(3, range(5)))
    delta = DeltaForward(population.mapped)
    reference = reference_forward(population.mapped, edits.dense(), X)
    assert torch.allclose(delta(edits, X), reference, atol=1e-5, rtol=0)
    per_chip = torch.randn(5, 2, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    expected = torch.stack([reference_forward(population.mapped, edits.dense()[i : i + 1],
                                              per_chip[i])[0] for i in range(5)])
    assert torch.allclose(delta(edits, per_chip, per_chip_input=True), expected, atol=1e-5,
                          rtol=0)


def test_populations_take_the_sparse_path_only_when_it_pays(model):
    assert Population(model, "bitflip:p=1e-4", n=2).sparse
    assert Population(model, "stuck:p=1e-4+levelflip:p=1e-4", n=2).sparse
    assert not Population(model, "bitflip:p=1e-3", n=2).sparse  # 0.8 % of the weights
    assert not Population(model, "bitflip:p=1e-4+mult:eta=0.01", n=2).sparse
    assert Population(model, "bitflip:p=1e-4@per-read", n=2).sparse
    assert not Population(model, "bitflip:p=1e-4+mult:eta=0.01@per-read", n=2).sparse
    assert not Population(model, "none", n=2).sparse
    reflected = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"),
                              nn.Conv2d(2, 1, 3))
    assert not Population(reflected, "bitflip:p=1e-4", n=2).sparse


class TiedHead(nn.Module):
    """Reads its linear layer's weight directly, which the sparse path cannot correct."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 6 * 6, 5)

    def forward(self, x):
        return nn.functional.linear(self.conv(x).flatten(1), self.fc.weight, self.fc.bias)


def test_a_model_reading_a_weight_itself_falls_back_to_the_dense_path():
    torch.manual_seed(1)
    model = TiedHead().eval()
    sparse = Population(model, "bitflip:p=2e-4", seed=4, n=40)
    dense = sparse.with_faults(parse_spec("bitflip:p=2e-4+mult:eta=0"))
    assert sparse.sparse
    out = sparse.outputs(X)
    assert not sparse.sparse  # the fallback sticks, so every chunk takes the same path
    assert torch.equal(out, dense.outputs(X))


@pytest.mark.parametrize("spec", ["bitflip:p=1e-4@per-read",
                                  "stuck:p=1e-4+levelflip:p=5e-5,bits=2@per-read"])
def test_per_read_cell_faults_on_the_sparse_path(model, spec):
    sparse = Population(model, spec, seed=6, n=20, bits_per_cell=2)
    dense = sparse.with_faults(parse_spec(spec + "+mult:eta=0"))  # a dense static no-op
    assert sparse.sparse and not dense.sparse
    out = sparse.outputs(X)
    assert torch.allclose(out, dense.outputs(X), atol=1e-5, rtol=0)
    twice = sparse.outputs(X[:1].repeat(2, 1, 1, 1))
    assert not torch.equal(twice[:, 0], twice[:, 1])  # each read draws afresh
    assert torch.equal(sparse.outputs(X, chips=[11, 12]), out[11:13])


def test_sparse_population_outputs_match_the_dense_path(model):
    sparse = Population(model, "bitflip:p=2e-4", seed=8, n=300)
    dense = sparse.with_faults(parse_spec("bitflip:p=2e-4+mult:eta=0"))
    assert sparse.sparse and not dense.sparse
    assert torch.allclose(sparse.outputs(X), dense.outputs(X), atol=1e-5, rtol=0)


@pytest.mark.invariance
@pytest.mark.parametrize("name", ["resnet20-8", "mobilenet-v2-8", "vgg16-8", "unet-8"])
@pytest.mark.parametrize("n_inputs", [1, 3])
def test_zoo_sparse_chips_identical_whatever_the_chunk_size(name, n_inputs):
    entry = zoo.get_entry(name)
    population = Population(entry.build(), "bitflip:p=1e-4", seed=1, n=40)
    assert population.sparse
    x = torch.randn(n_inputs, *entry.input_shape, generator=torch.Generator().manual_seed(2))
    everyone = population.forward(range(40), x)
    for lo, hi in [(0, 1), (3, 10), (8, 16), (16, 40)]:
        assert torch.equal(population.forward(range(lo, hi), x), everyone[lo:hi])


def test_vectorised_chip_seeds_are_the_seed_sequence_seeds():
    rng = np.random.default_rng(0)
    chips = [0, 1, 2, 2**32 - 1, *map(int, rng.integers(0, 2**32, 40))]
    for seed in [0, 7, 2**32 - 1, int(rng.integers(0, 2**32))]:
        for read in [0, 1, 2**32 - 1]:
            assert chip_seeds(seed, chips, read) == [chip_seed(seed, c, read) for c in chips]
    assert chip_seeds(2**40, [3, 2**33]) == [chip_seed(2**40, 3), chip_seed(2**40, 2**33)]
    assert chip_seeds(5, []) == []


def test_sparse_edits_write_and_read_back():
    edits = SparseEdits.empty(torch.arange(4.0), 3)
    edits.write(torch.tensor([2, 0]), torch.tensor([1, 3]), torch.tensor([9.0, 8.0]))
    edits.write(torch.tensor([2]), torch.tensor([1]), torch.tensor([7.0]))  # latest wins
    assert edits.read(torch.tensor([2, 0, 1]), torch.tensor([1, 3, 3])).tolist() == [7, 8, 3]
    assert edits.dense().tolist() == [[0, 1, 2, 8], [0, 1, 2, 3], [0, 7, 2, 3]]
    row, col, delta = edits.entries()
    assert row.tolist() == [0, 2] and col.tolist() == [3, 1] and delta.tolist() == [5, 6]


def test_sparse_edits_random_writes_match_a_dense_copy():
    """Writes in any order, overlapping earlier ones or not, leave the rows a dense tensor
    written the same way holds (keys stay sorted and unique)."""
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(50, generator=g)
    edits, dense = SparseEdits.empty(reference, 7), reference.expand(7, -1).clone()
    for size in [0, 30, 1, 200, 60]:
        flat = torch.randperm(7 * 50, generator=g)[:size]
        row, col, values = flat // 50, flat % 50, torch.randn(size, generator=g)
        edits.write(row, col, values)
        dense[row, col] = values
        assert torch.equal(edits.dense(), dense)
        assert torch.equal(edits.keys, edits.keys.unique())
