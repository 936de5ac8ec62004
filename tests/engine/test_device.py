"""The device code path on the CPU: `resolve_device`, chips on an explicit device bit-identical
to the default, every generator and returned tensor on the population's device."""

import pytest
import torch
from conftest import ALL_FAULTS
from torch import nn

from cimtest._device import resolve_device
from cimtest.engine import Population
from cimtest.exceptions import ConfigError
from cimtest.faults import FaultStack

CPU = torch.device("cpu")
X = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
Y = torch.arange(6) % 10
FAULTS = [FaultStack((fault,)) for fault in ALL_FAULTS]
HARDWARE = "dac_bits=7,adc_bits=9,adc_bound=12,out_noise=0.06"


class Small(nn.Module):
    """A conv and a linear layer named as the scopes of `ALL_FAULTS` name them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv1(x)), 1))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return Small().eval()


def test_resolve_device_names() -> None:
    assert resolve_device(None) == CPU
    assert resolve_device("cpu") == resolve_device(" CPU ") == resolve_device(CPU) == CPU
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("text", ["tpu", "gpu", "cuda:x", "cuda:-1", "cpu:0", ""])
def test_resolve_device_refuses_unknown(text: str) -> None:
    with pytest.raises(ConfigError, match="cpu, cuda, cuda:N or auto"):
        resolve_device(text)


def test_resolve_device_refuses_missing_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for text in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device(text)
    assert resolve_device("auto") == CPU


def test_resolve_device_refuses_index_out_of_range(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda") == resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="no such CUDA device"):
        resolve_device("cuda:7")


def test_population_refuses_cuda_where_absent(model, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Population(model, "mult:eta=0.1", n=2, device="cuda")


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.spec())
def test_explicit_cpu_is_bit_identical_to_the_default(model, fault) -> None:
    default = Population(model, fault, seed=5, n=10, array_size=(8, 8))
    for device in ("cpu", CPU):
        explicit = Population(model, fault, seed=5, n=10, array_size=(8, 8), device=device)
        assert explicit.device == CPU
        assert torch.equal(explicit.weights(range(10)), default.weights(range(10)))
        assert torch.equal(explicit.outputs(X), default.outputs(X))
        assert torch.equal(explicit.accuracy(X, Y), default.accuracy(X, Y))


def test_periphery_and_aging_bit_identical_on_explicit_cpu(model) -> None:
    kw = {"seed": 2, "n": 9, "periphery": HARDWARE}
    default = Population(model, "mult:eta=0.05+drift:t=1", **kw)
    explicit = Population(model, "mult:eta=0.05+drift:t=1", device="cpu", **kw)
    assert torch.equal(explicit.outputs(X), default.outputs(X))
    times = [1.0, 3600.0]
    assert torch.equal(explicit.accuracy_at(X, Y, times), default.accuracy_at(X, Y, times))


def test_chunking_does_not_change_chips_on_a_device(model) -> None:
    population = Population(model, "rram:sigma=0.1,lambda=0.3", seed=1, n=16,
                            array_size=(8, 8), device="cpu")
    whole = population.forward(range(16), X)
    parts = torch.cat([population.forward(range(5), X), population.forward(range(5, 16), X)])
    assert torch.equal(whole, parts)
    assert torch.equal(population.forward([11], X), whole[11:12])


def test_every_returned_tensor_is_on_the_population_device(model) -> None:
    population = Population(model, "mult:eta=0.05+drift:t=1", seed=0, n=9,
                            periphery=HARDWARE, device=CPU)
    returned = [
        population.mapped.reference,
        population.weights(range(3)),
        population.forward(range(3), X),
        population.outputs(X),
        *population.outputs_each([X, X]),
        *population.forward_at(range(3), X, [1.0, 10.0]),
        population.accuracy(X, Y),
        population.accuracy_at(X, Y, [1.0, 10.0]),
    ]
    assert all(tensor.device == CPU for tensor in returned)
    assert all(p.device == CPU for p in population.mapped.ideal.parameters())


def test_scratch_on_another_device_is_refused(model) -> None:
    population = Population(model, "mult:eta=0.05", n=2, device="cpu")
    scratch = torch.empty(2, population.mapped.reference.numel(), device="meta")
    with pytest.raises(ValueError, match="on cpu"):
        population.weights([0, 1], scratch=scratch)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.spec())
def test_every_generator_is_created_on_the_population_device(model, fault, monkeypatch) -> None:
    real = torch.Generator
    devices: list[object] = []

    def recording(*args, **kwargs):
        devices.append(kwargs.get("device", args[0] if args else None))
        return real(*args, **kwargs)

    population = Population(model, fault, seed=3, n=9, array_size=(8, 8),
                            periphery=HARDWARE, device="cpu")
    sparse = Population(model, "bitflip:p=1e-4", seed=3, n=9, device="cpu")
    monkeypatch.setattr(torch, "Generator", recording)
    population.weights(range(9))
    population.outputs(X)
    sparse.outputs(X)
    assert sparse.sparse
    assert devices, "no generator was created"
    assert all(device is not None and torch.device(device) == CPU for device in devices), devices
