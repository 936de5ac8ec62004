"""`cimtest egis fit | evaluate | apply` end to end on a tiny model: files, JSON, exit codes."""

import json

import pytest
import torch
from conftest import factory_module
from safetensors.torch import save_file
from typer.testing import CliRunner

from cimtest.cli.egis_cmd import app

FAULT = "egis-typical:sigma=0.3"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny digits classifier as module:factory + weights, and a damaged copy (a chip)."""
    root = tmp_path_factory.mktemp("egismodel")
    with factory_module(root, "egistiny") as model:
        damaged = {k: v * (1 + 0.8 * torch.randn_like(v)) for k, v in model.state_dict().items()}
        save_file(damaged, root / "chip.safetensors")
        yield {"spec": "egistiny:tiny", "weights": root / "tiny.safetensors",
               "chip": root / "chip.safetensors", "root": root}


@pytest.fixture(scope="module")
def fitted(tiny):
    path = tiny["root"] / "test"
    result = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o", path,
                 "--fault", FAULT, "--chips", 48, "--images", 32, "--k", 2, "--cutoff", "A50",
                 "--steps", 10, "--batch", 16, "--splits", 1, "--rho", 0.7,
                 "--test-images", 100, "--json")
    assert result.exit_code == 0, result.output
    return path, json.loads(result.stdout)


def test_fit_writes_testdir_and_reports(fitted):
    path, report = fitted
    assert (path / "test.safetensors").is_file() and (path / "detector.txt").is_file()
    assert report["cutoff"] == "A50" and report["k"] == 2 and len(report["chosen"]) == 2
    assert 0 < report["passed"] < 48


def test_fit_rejects_bad_cutoff(tiny):
    result = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o",
                 tiny["root"] / "x", "--cutoff", "50")
    assert result.exit_code == 2 and "A50" in result.output


def test_fit_refuses_one_sided_labels(tiny):
    result = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o", tiny["root"] / "y",
                 "--fault", "none", "--chips", 4, "--test-images", 20)
    assert result.exit_code == 2 and "one side" in result.output


def test_evaluate_json_rows(tiny, fitted):
    path, _ = fitted
    result = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
                 "--chips", 16, "--seed", 5, "--test-images", 100, "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert {"cutoff", "k", "ta", "te", "yl", "cte", "bte"} <= set(row)
    assert row["cutoff"] == "A50" and row["k"] == 2 and row["chips"] == 16
    assert row["ta"] + row["te"] + row["yl"] == pytest.approx(100.0)
    same = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
               "--chips", 16, "--seed", 0)
    assert same.exit_code == 2 and "independent" in same.output


def test_apply_exit_codes(tiny, fitted):
    path, _ = fitted
    ok = run("apply", path, "--model", tiny["spec"], "--weights", tiny["weights"], "--json")
    assert ok.exit_code in (0, 1), ok.output
    assert json.loads(ok.stdout)["verdict"] == ("pass" if ok.exit_code == 0 else "fail")
    refused = run("apply", path, "--model", tiny["spec"], "--weights", tiny["chip"])
    assert refused.exit_code == 2 and "--force" in refused.output
    chip = run("apply", path, "--model", tiny["spec"], "--weights", tiny["chip"],
               "--reference", tiny["spec"], "--reference-weights", tiny["weights"])
    assert chip.exit_code in (0, 1), chip.output
    assert run("apply", tiny["root"] / "missing", "--model", tiny["spec"], "--weights",
               tiny["weights"]).exit_code == 2
