"""`cimtest monitor`: a fitted test retesting a tiny user model's chips as they age, its JSON
rows, tables, report and store, and every refusal (one line, exit 2, nothing written)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from clitools import error_line
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.main import app

runner = CliRunner()
AGING = "mult:eta=0.1+drift:nu=0.1,nu_sd=0.05"
CHIPS = 12


def run(*args):
    return runner.invoke(app, ["-q", *map(str, args)])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A Bayesian test vector fitted on the tiny MLP; the arguments that name the model."""
    root = tmp_path_factory.mktemp("monitor")
    with factory_module(root, "monitortiny"):
        model = ["--model", "monitortiny:tiny", "--weights", root / "tiny.safetensors"]
        test = root / "btv.safetensors"
        result = run("btv", "fit", "monitortiny:tiny", "--weights", root / "tiny.safetensors",
                     "-o", test, "--steps", 40)
        assert result.exit_code == 0, result.output
        yield [test, *model]


def _monitor(fitted, *args):
    return run("monitor", *fitted, "--fault", AGING, "--at", "1h,1w,1y", "--chips", CHIPS,
               *args)


def test_json_rows_table_and_report(fitted, tmp_path):
    table, page = tmp_path / "rows.csv", tmp_path / "m.html"
    result = _monitor(fitted, "--json", "-o", table, "--html", page)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [row["t"] for row in doc["rows"]] == [3600.0, 604800.0, 31557600.0]
    assert all({"t", "accuracy_mean", "failing", "flagged", "false_alarms", "remedied",
                "replaced"} <= set(row) for row in doc["rows"])
    assert {"failed", "detected", "missed", "latency_median_s"} <= set(doc["latency"])
    assert doc["false_alarms"]["chip_years"] == pytest.approx(CHIPS)
    rows = pd.read_csv(table)
    assert len(rows) == 3 * CHIPS and set(rows["chip"]) == set(range(CHIPS))
    for row, (_, at) in zip(doc["rows"], rows.groupby("t"), strict=True):
        assert row["accuracy_mean"] == pytest.approx(at["accuracy"].mean())
        assert row["flagged"]["share"] == pytest.approx(at["flagged"].mean())
    text = page.read_text()
    assert text.count("<img") == 2 and "false alarms per chip-year" in text


def test_human_output_names_every_column(fitted):
    result = _monitor(fitted, "--remedy", "reprogram", "--compensate", "gdc")
    assert result.exit_code == 0, result.output
    for word in ("failing", "flagged", "false alarms", "remedied", "re-verified", "replaced",
                 "per chip-year", "1w"):
        assert word in result.stdout


def test_the_store_resumes_to_the_same_document(fitted, tmp_path):
    store = tmp_path / "m.db"
    first = _monitor(fitted, "--store", store, "--json", "--remedy", "recalibrate")
    again = _monitor(fitted, "--store", store, "--json", "--remedy", "recalibrate")
    assert first.exit_code == again.exit_code == 0, first.output + again.output
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    one.pop("seconds"), two.pop("seconds")
    assert one == two
    line = error_line(_monitor(fitted, "--store", store, "--json"))
    assert "holds another monitor run" in line and "remedy" in line


@pytest.mark.parametrize(("args", "words"), [
    (("--fault", "mult:eta=0.1"), "time model"),
    (("--at", "1d,1h"), "must increase"),
    (("--at", "-1h"), "not negative"),
    (("--at", "1fortnight"), "unknown time unit"),
    (("--remedy", "pray"), "--remedy"),
    (("--compensate", "gcd"), "--compensate"),
    (("--fault", "mult:eta=0.1+retention:temp=-300"), "temp"),
    (("--max-drop", "-1"), "--max-drop"),
    (("--chips", "0"), "--chips"),
])
def test_refusals_write_nothing(fitted, tmp_path, args, words):
    table = tmp_path / "rows.csv"
    base = {"--fault": AGING, "--at": "1h,1y", "--chips": CHIPS}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [str(v) for pair in base.items() for v in pair]
    line = error_line(run("monitor", *fitted, *flat, "-o", table))
    assert words in line
    assert not table.exists()
