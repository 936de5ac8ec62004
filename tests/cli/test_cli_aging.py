"""`cimtest campaign --at`: the same chips at several ages, one summary per age, and the
refusals (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.main import app

runner = CliRunner()
AGING = "mult:eta=0.1+drift:nu=0.3,nu_sd=0.1"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    with factory_module(root, "agingtiny"):
        yield ["agingtiny:tiny", "--weights", str(root / "tiny.safetensors")]


def run(*args):
    return runner.invoke(app, ["-q", *map(str, args)])


def test_one_summary_per_age_equal_to_a_campaign_at_that_age(tiny, tmp_path):
    out = tmp_path / "chips.csv"
    result = run("campaign", *tiny, "--fault", AGING, "--chips", 16, "--at", "1h,1d,1y",
                 "--json", "-o", out)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["t"] for row in rows] == [3600.0, 86400.0, 31557600.0]
    assert all({"chips", "accuracy_mean", "accuracy_sd", "percentiles", "ideal_accuracy"}
               <= set(row) for row in rows)
    assert rows[-1]["accuracy_mean"] < rows[0]["accuracy_mean"]
    one = run("campaign", *tiny, "--fault", AGING + ",t=86400", "--chips", 16, "--json")
    assert json.loads(one.stdout)["accuracy_mean"] == rows[1]["accuracy_mean"]
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["t", "chip", "accuracy", "drop"] and len(frame) == 48
    assert frame[frame.t == 86400.0].accuracy.mean() == pytest.approx(rows[1]["accuracy_mean"])
    text = run("campaign", *tiny, "--fault", "retention:tau=1e6,temp=85", "--chips", 8,
               "--at", "0,1d")
    assert text.exit_code == 0 and "t (s)" in text.stdout and "86400" in text.stdout


@pytest.mark.parametrize("args, message", [
    (["--fault", AGING, "--at", "1d,1h"], "--at: times must increase"),
    (["--fault", AGING, "--at", "-1h"], "--at: a time since programming is finite and not"),
    (["--fault", AGING, "--at", "1h,2x"], "--at: unknown time unit 'x'"),
    (["--fault", AGING, "--at", "1m"], "ambiguous"),
    (["--fault", "mult:eta=0.1", "--at", "1h"], "--at needs a fault with a time model"),
    (["--fault", "retention:temp=-300", "--at", "1h"], "above absolute zero"),
    (["--fault", "drift:nu=0.05"], "needs its level 't'"),
    (["--fault", AGING, "--at", "1h", "--store", "s.db"], "no --store or --dask"),
])
def test_refused_in_one_line_with_nothing_written(tiny, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run("campaign", *tiny, *args, "--chips", 4, "-o", "chips.csv")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("cimtest: error: "), result.stderr
    assert message in lines[0], lines[0]
    assert os.listdir(tmp_path) == []


def test_calibrate_finds_the_age_of_a_drop(tiny):
    """The level of drift is its age: calibrate finds when the mean drop reaches each target,
    later for a larger drop."""
    result = run("calibrate", *tiny, "--fault", "drift:nu=0.3,nu_sd=0.1", "--drop", "2,10",
                 "--chips", 8, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["level"] < rows[1]["level"]  # the drop grows with age
    assert all(abs(row["measured_drop"] - row["drop"]) < 1.0 for row in rows)
