"""The store from the CLI: campaign --store/--new/--dask, export and status, and their errors."""

import json
import sqlite3
import textwrap

import pandas as pd
import pytest
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.main import app
from cimtest.engine import SQLiteStore

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def tiny():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
        model.input_shape = (1, 8, 8)
        return model
    """
)

runner = CliRunner()


@pytest.fixture(scope="module")
def model_args(tmp_path_factory):
    """A tiny MLP trained a little on the digits (an untrained one scores near chance, which
    every command warns about)."""
    root = tmp_path_factory.mktemp("storecli")
    with factory_module(root, "storeclitiny", FACTORY):
        yield ["storeclitiny:tiny", "--weights", str(root / "tiny.safetensors")]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def campaign(model_args, store, *extra, fault="mult:eta=0.3"):
    return run("campaign", *model_args, "--fault", fault, "--chips", 40, "--seed", 3,
               "--test-images", 30, "--memory", "120KB", "--store", store, "--json", *extra)


def one_error_line(result, message):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cimtest: error:"), result.stderr
    assert message in lines[0]


def test_campaign_store_resumes_export_and_status(model_args, tmp_path):
    store = tmp_path / "runs" / "x.db"
    first = campaign(model_args, store)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["chips"] == summary["chips_computed"] == 40
    with sqlite3.connect(store) as conn:  # as if killed after two chunks
        conn.execute("DELETE FROM chips WHERE chip >= 16")
        conn.execute("DELETE FROM chunks WHERE start >= 16")
    resumed = campaign(model_args, store, "-o", tmp_path / "chips.csv")
    assert resumed.exit_code == 0, resumed.output
    again = json.loads(resumed.stdout)
    assert again["chips_computed"] == 24 and again["chips"] == 40
    assert again["accuracy_mean"] == summary["accuracy_mean"]
    assert again["accuracy_sd"] == summary["accuracy_sd"]
    assert "resuming" in resumed.stderr and "16 of 40 chips stored" in resumed.stderr

    status = run("status", store, "--json")
    assert status.exit_code == 0, status.output
    doc = json.loads(status.stdout)
    assert {"chips_total", "chips_done", "spec", "seed"} <= set(doc)
    assert (doc["chips_total"], doc["chips_done"], doc["spec"], doc["seed"]) == (
        40, 40, "mult:eta=0.3", 3)
    assert doc["runs"] == 2 and doc["eta_s"] is None
    text = run("status", store)
    assert "mult:eta=0.3" in text.stdout and "40 / 40" in text.stdout

    parquet, csv = tmp_path / "out.parquet", tmp_path / "out.csv"
    assert run("export", store, "--format", "parquet", "-o", parquet).exit_code == 0
    assert run("export", store, "-o", csv).exit_code == 0
    frame = pd.read_parquet(parquet)
    assert list(frame.columns) == ["chip", "accuracy", "drop"] and len(frame) == 40
    assert frame.equals(pd.read_csv(csv))
    assert frame.equals(pd.read_csv(tmp_path / "chips.csv"))
    assert frame["accuracy"].mean() == pytest.approx(summary["accuracy_mean"])


def test_another_campaign_is_refused_until_new(model_args, tmp_path):
    store = tmp_path / "x.db"
    assert campaign(model_args, store).exit_code == 0
    refused = campaign(model_args, store, fault="mult:eta=0.2")
    one_error_line(refused, "--new")
    replaced = campaign(model_args, store, "--new", fault="mult:eta=0.2")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.stdout)["chips_computed"] == 40
    assert json.loads(run("status", store, "--json").stdout)["spec"] == "mult:eta=0.2"


def test_a_locked_store_is_refused(model_args, tmp_path):
    store = tmp_path / "x.db"
    assert campaign(model_args, store).exit_code == 0
    holder = SQLiteStore(store)
    with holder.writer():
        one_error_line(campaign(model_args, store), "in use by a running campaign")
        assert run("status", store, "--json").exit_code == 0  # readers take no lock


def test_export_keeps_an_existing_file_on_error(model_args, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    one_error_line(run("export", tmp_path / "missing.db", "-o", out), "no campaign store")
    assert out.read_text() == "previous\n"


@pytest.mark.parametrize("args, message", [
    (["--new"], "--store"),
    (["--dask", "nowhere"], "--dask"),
    (["--dask", "local:0"], "--dask"),
])
def test_bad_campaign_options(model_args, tmp_path, args, message):
    store_args = [] if args == ["--new"] else ["--store", tmp_path / "x.db"]
    result = run("campaign", *model_args, "--fault", "mult:eta=0.1", "--chips", 8,
                 *store_args, *args)
    one_error_line(result, message)


@pytest.mark.parametrize("args, message", [
    (["--format", "xlsx", "-o", "out.xlsx"], "--format"),
    (["--format", "csv", "-o", "out.parquet"], ".csv"),
])
def test_bad_export_options(model_args, tmp_path, args, message):
    store = tmp_path / "x.db"
    assert campaign(model_args, store).exit_code == 0
    args = [str(tmp_path / a) if a.startswith("out") else a for a in args]
    one_error_line(run("export", store, *args), message)


def test_status_of_something_that_is_not_a_store(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("hello " * 100)
    one_error_line(run("status", bogus), "not a cimtest campaign store")
