"""The built-in data sets from the command line: a zoo model's own set, `--data NAME` for
any model at its input shape, and `--test-images N` as the truth's size."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from cimtest.cli.main import app
from cimtest.data import builtin_splits

runner = CliRunner()

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def flat():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(40, 32), nn.ReLU(), nn.Linear(32, 10))
        model.input_shape = (40,)
        return model
    """
)


def run(*args):
    result = runner.invoke(app, ["-q", *map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def flat_model(tmp_path_factory):
    """A user's untrained MLP on (40,) features, as module:factory + weights."""
    import importlib
    import sys

    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("flat")
    (root / "flatuser.py").write_text(FACTORY)
    sys.path.insert(0, str(root))
    try:
        save_file(importlib.import_module("flatuser").flat().state_dict(),
                  root / "flat.safetensors")
        yield ["flatuser:flat", "--weights", str(root / "flat.safetensors")]
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("flatuser", None)


def test_a_zoo_model_reads_its_own_generated_truth_of_the_asked_size():
    out = run("campaign", "cnn-mnist1d", "--fault", "mult:eta=0.05", "--chips", 8,
              "--test-images", 1_000, "--json")
    assert out["data"] == "mnist1d-test" and out["test_images"] == 1_000
    # the ideal chip of the shipped CNN on these 1,000 samples, recomputed here
    from cimtest.engine import Population
    from cimtest.loading import load_model

    loaded = load_model("cnn-mnist1d")
    test = builtin_splits("mnist1d", (1, 40), test_size=1_000).test
    ideal = float(Population(loaded.module, "none", n=1).accuracy(test.x, test.y)[0])
    assert out["ideal_accuracy"] == pytest.approx(ideal)


def test_data_by_name_at_a_user_models_shape(flat_model):
    out = run("campaign", *flat_model, "--fault", "mult:eta=0.05", "--chips", 4,
              "--data", "mnist1d", "--test-images", 300, "--json")
    assert out["data"] == "mnist1d-test" and out["test_images"] == 300


def test_compare_on_mnist1d_draws_real_inputs_from_the_independent_pool():
    result = runner.invoke(app, ["-q", "compare", "cnn-mnist1d", "--fault", "mult:eta=0.1",
                                 "--chips", 12, "--eval-chips", 8, "--k", 2, "--images", 16,
                                 "--steps", 3, "--btv-steps", 3, "--test-images", 400,
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"egis", "hybrid", "random-synthetic+detector", "dataset-aware"} <= {
        r["method"] for r in rows}


def test_lenet5_on_mnist_keeps_the_first_test_images():
    out = run("campaign", "lenet5-mnist", "--fault", "mult:eta=0.05", "--chips", 4,
              "--test-images", 200, "--json")
    assert out["data"] == "mnist-test" and out["test_images"] == 200
    full = builtin_splits("mnist", (1, 28, 28)).test
    assert torch.equal(builtin_splits("mnist", (1, 28, 28), test_size=200).test.x, full.x[:200])
