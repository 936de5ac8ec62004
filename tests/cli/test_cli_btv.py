"""`cimtest btv fit | evaluate | apply` end to end on a tiny model: files, JSON, exit codes."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import factory_module
from safetensors.torch import save_file
from typer.testing import CliRunner

from cimtest.cli.btv_cmd import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny digits classifier as module:factory + weights, and a damaged copy (a chip)."""
    root = tmp_path_factory.mktemp("btvmodel")
    with factory_module(root, "btvtiny") as model:
        # a grossly damaged chip: every weight tripled, which spreads the logits
        damaged = {k: 3.0 * v for k, v in model.state_dict().items()}
        save_file(damaged, root / "chip.safetensors")
        yield {"spec": "btvtiny:tiny", "weights": root / "tiny.safetensors",
               "chip": root / "chip.safetensors", "root": root}


@pytest.fixture(scope="module")
def fitted(tiny):
    path = tiny["root"] / "test.safetensors"
    result = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o", path, "--steps", 60,
                 "--false-alarm", 0.05, "--json")
    assert result.exit_code == 0, result.output
    return path, json.loads(result.stdout)


def test_fit_writes_artefact_and_reports(fitted):
    path, report = fitted
    assert path.is_file()
    assert report["final_loss"] < report["loss_curve"]["0"]
    assert report["threshold"] == report["sigma_ideal"]
    assert report["threshold_false_alarm"] is not None and report["n_samples"] == 1
    assert report["storage_bytes"] == 2 * 64 * 4


def test_fit_refuses_bad_output_before_work(tiny):
    result = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o",
                 tiny["root"] / "t.json")
    assert result.exit_code == 2 and ".safetensors" in result.output


def test_apply_exit_codes(tiny, fitted):
    path, _ = fitted
    ok = run("apply", path, "--model", tiny["spec"], "--weights", tiny["weights"], "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["rows"][0]["verdict"] == "pass"
    # a damaged chip: its own fingerprint differs, so the reference is named
    bad = run("apply", path, "--model", tiny["spec"], "--weights", tiny["chip"],
              "--reference", tiny["spec"], "--reference-weights", tiny["weights"])
    assert bad.exit_code == 1, bad.output
    assert "uncertain" in bad.stdout
    refused = run("apply", path, "--model", tiny["spec"], "--weights", tiny["chip"])
    assert refused.exit_code == 2 and "--reference MODEL" in refused.output  # the fix, not force
    forced = run("apply", path, "--model", tiny["spec"], "--weights", tiny["chip"], "--force")
    assert forced.exit_code == 1
    corrupt = tiny["root"] / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage")
    assert run("apply", corrupt, "--model", tiny["spec"], "--weights", tiny["weights"]
               ).exit_code == 2


def test_evaluate_json_and_csv(tiny, fitted):
    path, _ = fitted
    csv = tiny["root"] / "rows.csv"
    result = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
                 "--fault", "mult:eta=0.3", "--fault", "bitflip:p=0.01", "--chips", 16,
                 "--offsets", "0,0.05", "--fresh", 50, "--fresh-per-chip", 2, "--test-images", 50,
                 "--json", "-o", csv)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 * 3  # two faults x (two offsets + the false-alarm rule)
    keys = {"fault", "level", "chips", "coverage", "coverage_dropped", "verifiable_coverage",
            "false_alarm_ideal", "false_alarm_nodrop", "auc"}
    assert all(keys <= set(r) for r in rows)
    assert rows[0]["fault"] == "mult" and rows[0]["level"] == "mult:eta=0.3"
    assert all(0 <= r["coverage"] <= 1 for r in rows)
    assert [r["chips"] for r in rows[:3]] == [16, 16, 32]  # the false-alarm row: 2 per chip
    assert rows[0]["coverage"] >= rows[1]["coverage"]  # a higher offset flags fewer chips
    assert csv.read_text().count("\n") == 7
    text = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
               "--fault", "mult:eta=0.3", "--chips", 8, "--fresh", 20, "--test-images", 20)
    assert text.exit_code == 0 and "AUC" in text.stdout


def test_evaluate_layers_point_and_paper_tables(tiny, fitted):
    path, _ = fitted
    csv = tiny["root"] / "cells.csv"
    args = ("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
            "--fault", "mult:eta=0.2", "--fault", "mult:eta=0.4", "--fault", "bitflip:p=0.01",
            "--chips", 12, "--offsets", "0,0.1", "--layers", "0.5", "--fresh", 20,
            "--fresh-per-chip", 0, "--test-images", 40, "--point", 2)
    result = run(*args, "--json", "-o", csv)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 6 * 2  # (3 specs on all layers + the same on half) x two offsets
    assert [r["level_index"] for r in rows[::2]] == [1, 2, 1, 1, 2, 1]
    assert [r["layers"] for r in rows[::2]] == [None] * 3 + [0.5] * 3
    assert rows[6]["level"] == "mult:eta=0.2@layers=0.5" and rows[6]["base_level"] == \
        "mult:eta=0.2"
    assert all(0 <= r["coverage_point"] <= 1 and "auc_point" in r for r in rows)
    # rows x columns with the index columns: kinds x (fault, 1, 2); levels x (fault, level,
    # all, 50%) and levels x (fault, level, 0, 0.1)
    for name, shape in (("coverage", (2, 3)), ("verifiable", (2, 3)), ("layers", (3, 4)),
                        ("offsets", (3, 4))):
        assert pd.read_csv(csv.with_name(f"cells-{name}.csv")).shape == shape, name
    coverage = pd.read_csv(csv.with_name("cells-coverage.csv"), index_col=0)
    first = rows[0]  # mult level 1, all layers, offset 0
    assert coverage.loc["mult", "1"] == pytest.approx(100 * first["coverage"])
    text = run(*args)
    assert text.exit_code == 0, text.output
    assert "Table V" in text.stdout and "mult 2 = mult:eta=0.4" in text.stdout


def test_evaluate_plot_writes_the_spread_figure(tiny, fitted):
    path, _ = fitted
    png = tiny["root"] / "spread.png"
    args = ("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
            "--fault", "mult:eta=0.2", "--fault", "bitflip:p=0.01", "--chips", 6, "--fresh", 10,
            "--fresh-per-chip", 0, "--test-images", 20, "--point", 2, "--layers", "0.5")
    result = run(*args, "--plot", png, "--json")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run(*args, "--plot", tiny["root"] / "spread.pdf")
    assert bad.exit_code == 2 and ".png" in bad.output


def test_evaluate_layers_refuses_scoped_spec(tiny, fitted):
    path, _ = fitted
    result = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
                 "--fault", "mult:eta=0.2@layers=0.3", "--layers", "0.5", "--chips", 4)
    assert result.exit_code == 2 and "already has a layer scope" in result.output


def test_evaluate_refuses_other_model(tiny, fitted):
    path, _ = fitted
    result = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["chip"],
                 "--fault", "mult:eta=0.1", "--chips", 4)
    assert result.exit_code == 2 and "--force" in result.output


def test_a_factory_without_weights_is_told_to_give_them(tiny, fitted):
    """--model module:factory with no --weights is the untrained model: the error names
    --weights and the file the test was fitted with, not --force (which would score it)."""
    path, _ = fitted
    result = run("evaluate", path, "--model", tiny["spec"], "--fault", "mult:eta=0.1",
                 "--chips", 4)
    assert result.exit_code == 2, result.output
    line = " ".join(result.stderr.split())  # the error as one line, whatever the wrapping
    assert f"give --weights {Path(tiny['weights']).resolve()}" in line, line
    assert "--force" not in line
