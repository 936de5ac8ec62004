"""A user's own models and data from the command line, with no wrapper: data used as given,
inputs of rank 1, 2 and 3 inferred, every command end to end, and bad inputs refused in one
line (exit 2) with nothing written."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner
from usermodels import build

from cimtest.cli.main import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The single line a refused command prints, checked to be one line with exit code 2."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("cimtest: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    """The three user models (seq: Conv1d on (1, 64); branchy: Conv2d on (3, 16, 16); mlp:
    Linear on (20,)), trained on inputs in [0, 1], with their .npz test and real data."""
    root = tmp_path_factory.mktemp("users")
    try:
        yield build(root)
    finally:
        sys.path.remove(str(root))


# ---- data as given --------------------------------------------------------------------------


def test_user_data_is_used_as_stored_and_info_prints_accuracy_first(users):
    model = users["branchy"]
    result = run("info", *model.args, "--data", model.data, "--input-shape", "3,16,16")
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"accuracy on {model.data.name}: float 100.00 %"), first
    assert "near chance" not in result.stderr
    report = json.loads(run("info", *model.args, "--data", model.data, "--input-shape",
                            "3,16,16", "--json").stdout)
    assert list(report)[:3] == ["float_accuracy", "ideal_accuracy", "data"]


def test_a_wrong_normalisation_warns_in_one_line(users):
    model = users["branchy"]
    for command in (("info",), ("campaign", "--fault", "mult:eta=0.01", "--chips", 2)):
        result = run(*command, *model.args, "--data", model.data, "--input-shape", "3,16,16",
                     "--normalise", "10,1")
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if "near chance" in line]
        assert len(warnings) == 1, result.stderr
        assert "is the data scaled as the model expects?" in warnings[0]


def test_normalisation_stored_in_the_npz_is_applied(users, tmp_path):
    model = users["branchy"]
    with np.load(model.data) as archive:
        x, y = archive["x"], archive["y"]
    mean, std = np.array([0.2, 0.3, 0.4]), np.array([2.0, 4.0, 0.5])
    np.savez(tmp_path / "scaled.npz", x=x * std[:, None, None] + mean[:, None, None], y=y,
             mean=mean, std=std)
    result = run("info", *model.args, "--data", tmp_path / "scaled.npz", "--input-shape",
                 "3,16,16", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["float_accuracy"] == 100.0


@pytest.mark.parametrize("value", ["1,2,3", "0.5,0", "a,b", "0.5,nan", ""])
def test_bad_normalise_is_refused_before_the_model_loads(users, value):
    model = users["branchy"]
    line = error_line(run("info", *model.args, "--data", model.data, "--normalise", value))
    assert "--normalise" in line
