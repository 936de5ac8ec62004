"""A user's own models of every input rank through the Python API: loaded with the input
shape inferred, mapped, faulted (the batched path equal to the per-chip reference), scored
on the user's data as stored, and tested by every compared method, EGIS and the methods
built on its generator included, at every rank."""

import sys

import pytest
import torch
from usermodels import SHAPES, build

from cimtest.artifacts import load_artifact
from cimtest.data import load_data
from cimtest.engine import BatchedForward, Population
from cimtest.engine.reference import reference_forward
from cimtest.engine.seeding import chip_generators
from cimtest.exceptions import ModelError
from cimtest.faults import parse_spec
from cimtest.loading import load_model, reload_model
from cimtest.methods.btv import BayesianTestVector
from cimtest.report import compare, default_methods

LEVELS = {"seq": "mult:eta=2", "branchy": "mult:eta=0.3", "mlp": "mult:eta=1"}


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-users")
    try:
        yield build(root, module="usermodels_api")
    finally:
        sys.path.remove(str(root))


@pytest.mark.parametrize("name", list(SHAPES))
def test_load_map_fault_and_score(users, name):
    user = users[name]
    loaded = load_model(user.spec, weights=user.weights, data=user.data)
    assert loaded.input_shape == SHAPES[name] and loaded.task == "classification"
    data = load_data(user.data, loaded.input_shape, num_classes=loaded.num_classes)
    assert data.input_shape == SHAPES[name] and float(data.x.max()) <= 1.0  # as stored
    population = Population(loaded.module, "none", seed=5, n=4)
    flat = population.weights(range(4))
    parse_spec(LEVELS[name]).apply(flat, population.layout, chip_generators(5, range(4)))
    batched = BatchedForward(population.mapped)(flat, data.x[:16])
    reference = reference_forward(population.mapped, flat, data.x[:16])
    assert batched.shape == (4, 16, loaded.num_classes)
    assert torch.allclose(batched, reference, atol=1e-4, rtol=0)
    ideal = Population(loaded.module, "none", n=1).accuracy(data.x, data.y)
    assert ideal.item() == 100.0
    faulty = Population(loaded.module, LEVELS[name], seed=0, n=8).accuracy(data.x, data.y)
    assert faulty.mean() < 100.0


@pytest.mark.parametrize("name", list(SHAPES))
def test_methods_on_each_rank(users, name, tmp_path):
    user = users[name]
    loaded = load_model(user.spec, weights=user.weights, data=user.data)
    data = load_data(user.data, loaded.input_shape)
    real = load_data(user.real, loaded.input_shape)
    btv = BayesianTestVector(steps=5, seed=0).fit(loaded)
    assert btv.sample_.shape[1:] == SHAPES[name]
    saved = btv.save(tmp_path / "btv.safetensors")
    named = load_artifact(saved).model  # the test remembers its model and loads it again
    assert named == {"name": user.spec, "spec": user.spec, "weights": str(user.weights),
                     "input_shape": list(SHAPES[name])}
    with pytest.raises(ModelError, match="not imported"):  # a file's factory runs no code
        reload_model(named)
    assert BayesianTestVector.load(saved, loaded.fingerprint).model_ == named
    methods = default_methods(k=2, egis={"sid_size": 16, "steps": 2}, btv={"steps": 5})
    result = compare(loaded, LEVELS[name], data, real=real, methods=methods, train_chips=16,
                     eval_chips=8)
    assert {row["method"] for row in result.rows} == set(methods)
    assert {"egis", "hybrid", "random-synthetic+detector"} <= set(methods)
    assert tuple(result.methods["egis"].images_.shape[1:]) == SHAPES[name]
