"""Paper 1 Figs. 3-4's data: `output_spreads` against σ_y computed directly on the chips."""

import numpy as np
import torch
from torch import nn

from cimtest.data import Dataset
from cimtest.engine import Population
from cimtest.evaluation import Level, evaluate_btv, output_spreads
from cimtest.faults import read_fault
from cimtest.methods import BayesianTestVector
from cimtest.methods.baselines import PointTestVectors
from cimtest.report.plots import btv_output_spreads


def _model() -> nn.Module:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    model.input_shape = (1, 8, 8)
    return model


def _direct_sigma(outputs: torch.Tensor) -> np.ndarray:
    """σ_y by hand: the population standard deviation of each chip's output elements."""
    flat = outputs.double().reshape(outputs.shape[0], -1)
    return flat.std(dim=1, unbiased=False).numpy()


def test_output_spreads_equal_a_direct_computation():
    model = _model()
    test = BayesianTestVector(steps=20).fit(model)
    real = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    point = PointTestVectors(k=2)
    images = point.propose(model, Dataset(real, torch.arange(5), 10, "classification", "r"))
    chips = Population(model, "none", seed=5, n=6)
    specs = ["mult:eta=0.1", "mult:eta=0.3", "bitflip:p=0.01"]
    levels = [Level(read_fault(s), s, i) for s, i in zip(specs, (1, 2, 1), strict=True)]
    levels.append(Level(read_fault("mult:eta=0.3@layers=0.5"), "mult:eta=0.3", 2, 0.5))
    kept = []
    evaluate_btv(test, chips, levels, fresh=0, point=point,
                 on_level=lambda lv, r: kept.append((lv, r)))
    assert [r.sigma_images.shape for _, r in kept] == [(6, 2)] * 4
    data = output_spreads(test, chips, kept, images)
    assert data["inputs"] == ["vector", "image 1", "image 2"]
    assert [lv["level"] for lv in data["levels"]] == specs  # the layer-wise level is left out
    for spec, level in zip(specs, data["levels"], strict=True):
        population = chips.with_faults(spec, n=6)
        vector = _direct_sigma(population.outputs(test.sample_))
        assert np.allclose(level["sigma"][0], vector, rtol=1e-5)
        for i in range(2):
            image = _direct_sigma(population.outputs(images[i : i + 1]))
            assert np.allclose(level["sigma"][1 + i], image, rtol=1e-5)
    ideal = Population(model, "none", n=1).outputs(torch.cat([test.sample_, images]))[0]
    assert np.allclose(data["ideal_outputs"][1], ideal[1].double().numpy())
    assert np.isclose(data["ideal_sigma"][0], test.sigma_ideal_, rtol=1e-5)
    assert np.allclose(data["ideal_sigma"][1:], _direct_sigma(ideal[1:]), rtol=1e-5)
    png = btv_output_spreads(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_output_spreads_without_images():
    model = _model()
    test = BayesianTestVector(steps=5).fit(model)
    chips = Population(model, "none", n=3)
    kept = []
    evaluate_btv(test, chips, [Level(read_fault("add:eta=0.05"), "add:eta=0.05", 1)], fresh=0,
                 on_level=lambda lv, r: kept.append((lv, r)))
    data = output_spreads(test, chips, kept)
    assert data["inputs"] == ["vector"] and len(data["levels"][0]["sigma"]) == 1
    assert kept[0][1].sigma_images is None
