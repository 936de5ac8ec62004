"""Advice that does not mislead (issue 33, items 9 and 10): a level given to `calibrate` is
refused, a level that misses its target is flagged, a user's model scored on the digits says
so, and chance in the near-chance warning is 1 / classes."""

import json
import logging
import types

import pytest
import torch
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.inputs import near_chance
from cimtest.cli.main import app
from cimtest.data import Dataset

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The one line a refused command prints, checked to be one line with exit code 2."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("cimtest: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny digits MLP as module:factory + weights (not a zoo model: no data of its own)."""
    root = tmp_path_factory.mktemp("advice")
    with factory_module(root, "advicetiny"):
        yield ["advicetiny:tiny", "--weights", root / "tiny.safetensors"]


@pytest.mark.parametrize("fault", ["mult:eta=0.1", "bitflip:p=1e-3", "egis-typical:sigma=0.3"])
def test_calibrate_refuses_a_spec_with_its_level(fault):
    # refused before the model loads: the zoo name would cost a load if it got that far
    line = error_line(run("calibrate", "resnet20-8", "--fault", fault, "--drop", 2))
    assert "calibrate finds the level" in line and f"--fault {fault.split(':')[0]}" in line


def test_calibrate_refuses_fewer_than_two_chips():
    line = error_line(run("calibrate", "resnet20-8", "--fault", "mult", "--chips", 1))
    assert "--chips must be at least 2" in line


def test_calibrate_flags_a_level_that_misses_its_target(tiny):
    """Three bisection steps stop at a bracket end far from a 2-point drop: one warning line
    and meets_target false; fourteen steps land inside the band: neither."""
    args = ("calibrate", *tiny, "--fault", "mult", "--drop", 2, "--chips", 16, "--json")
    short = run(*args, "--iterations", 3)
    assert short.exit_code == 0, short.output
    (row,) = json.loads(short.stdout)
    assert row["meets_target"] is False and not row["ci_low"] <= 2 <= row["ci_high"]
    warnings = [line for line in short.stderr.splitlines() if "misses the target" in line]
    assert len(warnings) == 1 and "--iterations" in warnings[0], short.stderr
    full = run(*args, "--iterations", 14)
    assert full.exit_code == 0, full.output
    (row,) = json.loads(full.stdout)
    assert row["meets_target"] is True and row["ci_low"] <= 2 <= row["ci_high"]
    assert "misses the target" not in full.stderr


def test_a_user_model_without_data_says_what_it_is_scored_on(tiny):
    result = run("info", *tiny, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"] == "digits-8"
    (line,) = [line for line in result.stderr.splitlines() if "no --data" in line]
    assert "'advicetiny:tiny' was scored on the built-in digits (digits-8" in line
    assert "give --data" in line
    assert result.stderr.rstrip().endswith(line)  # after the result: a refusal stays one line
    # refused after the data is loaded (a budget below one chip's weights): one line
    line = error_line(run("campaign", *tiny, "--fault", "mult:eta=0.1", "--memory", "1KB"))
    assert "--memory" in line
    # a zoo model's own data is no default: nothing to say
    zoo = run("info", "resnet20-8", "--json")
    assert zoo.exit_code == 0 and "no --data" not in zoo.stderr


def test_near_chance_calls_chance_one_over_the_classes(caplog):
    """10 classes, 20 % of the labels one class: chance is 10 %, not the commonest share,
    which the warning names beside it."""
    y = torch.cat([torch.zeros(20, dtype=torch.long), torch.arange(80) % 9 + 1])
    data = Dataset(torch.zeros(100, 4), y, 10, "classification", "skewed")
    loaded = types.SimpleNamespace(task="classification")
    with caplog.at_level(logging.WARNING):
        assert near_chance(loaded, data, 25.0)  # below 20 + 0.25 * 80 = 40
    (message,) = [r.getMessage() for r in caplog.records]
    assert "near chance (1/10 = 10.0 %; always the commonest label: 20.0 %)" in message
    caplog.clear()
    balanced = Dataset(torch.zeros(100, 4), torch.arange(100) % 10, 10, "classification", "b")
    with caplog.at_level(logging.WARNING):
        assert near_chance(loaded, balanced, 30.0)  # below 10 + 0.25 * 90 = 32.5
        assert not near_chance(loaded, balanced, 33.0)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "near chance (1/10 = 10.0 %)" in message
