"""`--hardware` on campaign, calibrate and compare: the periphery from the command line."""

import json

import pytest
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.main import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def model_args(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardware")
    with factory_module(root, "hardwaretiny"):
        yield ["hardwaretiny:tiny", "--weights", str(root / "tiny.safetensors")]


def test_campaign_on_a_coarse_periphery_loses_accuracy(model_args):
    ideal = run("campaign", *model_args, "--fault", "none", "--chips", 8, "--json")
    coarse = run("campaign", *model_args, "--fault", "none", "--chips", 8, "--json",
                 "--hardware", "dac_bits=2,adc_bits=3,adc_bound=2,out_noise=0.2")
    assert ideal.exit_code == coarse.exit_code == 0, coarse.output
    plain, rough = json.loads(ideal.stdout), json.loads(coarse.stdout)
    assert plain["accuracy_sd"] == 0  # eight copies of the ideal chip
    assert rough["accuracy_mean"] < plain["accuracy_mean"] - 5  # 2-bit inputs, 3-bit outputs
    assert rough["accuracy_sd"] > 0  # each chip reads its own output noise


@pytest.mark.parametrize("hardware, words", [("dac_bits=0", "at least 2"),
                                             ("fast", "unknown hardware preset"),
                                             ("adc_bits=8", "adc_bound")])
def test_bad_hardware_is_refused_in_one_line(model_args, hardware, words, tmp_path):
    for command in (["campaign", *model_args, "--fault", "none", "-o", tmp_path / "t.csv"],
                    ["calibrate", *model_args, "--fault", "mult"],
                    ["compare", *model_args, "--fault", "mult:eta=0.2"]):
        result = run(*command, "--hardware", hardware)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "t.csv").exists()


def test_compare_scores_one_fit_under_several_faults(model_args, tmp_path):
    small = ("--chips", 20, "--eval-chips", 8, "--images", 16, "--steps", 2, "--btv-steps", 5,
             "--k", 2)
    result = run("compare", *model_args, "--fault", "mult:eta=0.3", *small, "--eval-fault",
                 "mult:eta=0.3", "--eval-fault", "bitflip:p=0.01", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["eval_fault"] for r in rows} == {"mult:eta=0.3", "bitflip:p=0.01"}
    assert len(rows) == 2 * len({r["method"] for r in rows})
    refused = run("compare", *model_args, "--fault", "mult:eta=0.3", "--eval-fault", "none",
                  "--eval-fault", "mult:eta=0.1", "-o", tmp_path / "run")
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.exit_code == 2 and len(lines) == 1 and "one --eval-fault" in lines[0]
    bad = run("compare", *model_args, "--fault", "mult:eta=0.3", "--eval-fault", "mult:zeta=1")
    assert bad.exit_code == 2
