"""The CLI end to end on a tiny model: JSON documents, output files and exit codes."""

import json
import logging
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.main import app

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def tiny():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 8 * 8, 10))
        model.input_shape = (1, 8, 8)
        return model
    """
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny classifier trained a little on digits, saved as module:factory + safetensors."""
    root = tmp_path_factory.mktemp("model")
    with factory_module(root, "clitiny", FACTORY):
        yield ["clitiny:tiny", "--weights", str(root / "tiny.safetensors")]


runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_zoo_list_json():
    result = run("zoo", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    names = {r["name"] for r in rows}
    assert {"resnet20", "resnet20-16", "resnet20-8", "unet", "dcgan-g"} <= names
    assert all({"name", "task", "params", "input_shape", "dataset", "test_size", "trained"}
               <= set(r) for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert (by_name["cnn-mnist1d"]["dataset"], by_name["cnn-mnist1d"]["test_size"]) == (
        "mnist1d", 150_000)
    assert (by_name["lenet5-mnist"]["dataset"], by_name["lenet5-mnist"]["test_size"]) == (
        "mnist", 1_500)
    assert (by_name["resnet20-8"]["dataset"], by_name["resnet20-8"]["test_size"]) == (
        "digits", 540)


def test_info_json(tiny_model):
    result = run("info", *tiny_model, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert len(info["fingerprint"]) == 64
    assert info["float_accuracy"] > 80 and abs(info["ideal_accuracy"] - info["float_accuracy"]) < 3
    assert [(r["name"], r["rows"], r["cols"], r["arrays"], r["cells"]) for r in info["layers"]] == [
        ("0", 9, 4, 1, 36 * 8),
        ("3", 256, 10, 1, 2560 * 8),
    ]
    tiled = json.loads(run("info", *tiny_model, "--json", "--array-size", "64x8",
                           "--bits-per-cell", "2").stdout)
    assert tiled["layers"][1]["arrays"] == 4 * 2 and tiled["layers"][1]["cells"] == 2560 * 4


def test_campaign_json_and_parquet(tiny_model, tmp_path):
    out = tmp_path / "chips.parquet"
    result = run("campaign", *tiny_model, "--fault", "mult:eta=0.3", "--chips", 40, "--seed", 1,
                 "-o", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {"chips", "accuracy_mean", "accuracy_sd", "chips_per_s"} <= set(summary)
    frame = pd.read_parquet(out)
    assert summary["chips"] == len(frame) == 40
    assert summary["accuracy_mean"] == pytest.approx(frame["accuracy"].mean())
    assert summary["accuracy_sd"] == pytest.approx(frame["accuracy"].std())
    again = run("campaign", *tiny_model, "--fault", "mult:eta=0.3", "--chips", 40, "--seed", 1,
                "--json", "--memory", "300KB")  # one micro-batch per chunk
    assert json.loads(again.stdout)["accuracy_mean"] == summary["accuracy_mean"]
    text = run("campaign", *tiny_model, "--fault", "mult:eta=0.3", "--chips", 10)
    assert "percentiles" in text.stdout and "#" in text.stdout


def test_calibrate_json(tiny_model):
    result = run("calibrate", *tiny_model, "--fault", "mult", "--drop", "2,5", "--chips", 16,
                 "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["drop"] for r in rows] == [2, 5]
    assert rows[0]["level"] < rows[1]["level"]
    assert all(abs(r["measured_drop"] - r["drop"]) < 0.5 for r in rows)


def test_calibrate_search_secant(tiny_model):
    """--search secant: the same JSON rows, each level meeting its target."""
    result = run("calibrate", *tiny_model, "--fault", "mult", "--drop", "2,5", "--chips", 16,
                 "--search", "secant", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["drop"] for r in rows] == [2, 5] and all(r["meets_target"] for r in rows)
    assert rows[0]["level"] < rows[1]["level"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["campaign", "--fault", "mult:eta=-1", "--chips", "2"], "eta"),
        (["campaign", "--fault", "warp:x=1", "--chips", "2"], "warp"),
        (["campaign", "--fault", "bitflip:p=2", "--chips", "2"], "p"),
        (["campaign", "--fault", "mult:eta=0.1", "--chips", "2", "-o", "/no/such/dir/x.csv"],
         "does not exist"),
        (["campaign", "--fault", "mult:eta=0.1", "--chips", "2", "-o", "x.txt"], "parquet"),
        (["campaign", "--fault", "mult:eta=0.1", "--chips", "2", "--data", "/no/data.npz"],
         "data.npz"),
        (["calibrate", "--fault", "mult", "--drop", "a,b"], "--drop"),
        (["calibrate", "--fault", "mult", "--search", "newton"], "--search"),
        (["compare", "--fault", "mult", "--drop", "2", "--search", "newton"], "--search"),
        (["egis", "--fault", "mult", "--drop", "2", "--search", "newton", "-o", "t"],
         "--search"),
        (["compare", "--fault", "mult:eta=0.1", "--input-range", "1,1"], "--input-range"),
        (["compare", "--fault", "mult:eta=0.1", "--input-range", "-1"], "LO,HI"),
        (["egis", "--fault", "mult:eta=0.1", "--input-range", "a,b", "-o", "t"], "LO,HI"),
        (["egis", "--fault", "mult:eta=0.1", "-o", "/no/such/dir/t"], "does not exist"),
        (["compare", "--fault", "mult:eta=0.1", "-o", "/no/such/dir/run"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_model, args, message):
    command = ["egis", "fit"] if args[0] == "egis" else args[:1]
    result = run(*command, *tiny_model, *args[1:])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cimtest: error:") and message in lines[0]


def test_bad_model_exit_codes(tmp_path):
    result = run("info", "no-such-model")
    assert result.exit_code == 2 and "unknown zoo model" in result.stderr
    result = run("info", "clitiny:tiny", "--weights", tmp_path / "missing.safetensors")
    assert result.exit_code == 2 and "missing.safetensors" in result.stderr
    assert run("no-such-command").exit_code == 2


def test_failed_output_leaves_nothing_behind(tiny_model, tmp_path):
    out = tmp_path / "chips.csv"
    out.write_text("previous results\n")
    result = run("campaign", *tiny_model, "--fault", "bitflip:p=7", "--chips", 2, "-o", out)
    assert result.exit_code == 2
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chips.csv"]


def test_campaign_reads_a_toml_fault_file(tiny_model, tmp_path):
    path = tmp_path / "faults.toml"
    path.write_text('[[fault]]\nkind = "mult"\neta = 0.3\n')
    from_file = run("campaign", *tiny_model, "--fault", path, "--chips", 16, "--json")
    from_text = run("campaign", *tiny_model, "--fault", "mult:eta=0.3", "--chips", 16, "--json")
    assert from_file.exit_code == 0, from_file.output
    assert json.loads(from_file.stdout)["accuracy_mean"] == json.loads(from_text.stdout)[
        "accuracy_mean"]
    missing = run("campaign", *tiny_model, "--fault", tmp_path / "none.toml", "--chips", 2)
    assert missing.exit_code == 2 and "none.toml" in missing.stderr


def test_zoo_train_then_demo_on_the_cached_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CIMTEST_HOME", str(tmp_path))
    result = run("zoo", "train", "mlp-8", "--json")
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["name"] == "mlp-8" and meta["value"] > 90
    listed = {r["name"]: r for r in json.loads(run("zoo", "list", "--json").stdout)}
    assert listed["mlp-8"]["trained"] and not listed["resnet20"]["trained"]
    out = tmp_path / "demo"
    result = run("demo", "--model", "mlp-8", "--chips", 20, "--images", 32, "--steps", 5,
                 "-o", out, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"]["float_accuracy"] == pytest.approx(meta["value"])
    assert doc["fault"].startswith("egis-typical:sigma=") and doc["calibration"]["drop"] == 2
    assert doc["weights"] == "trained here"
    assert set(doc["seconds"]) == {"load", "calibration", "training chips", "evaluation chips",
                                   "fits", "scoring", "report", "total"}
    methods = [r["method"] for r in doc["rows"]]
    assert {"btv", "egis", "hybrid", "fgsm", "dataset-aware"} <= set(methods)
    assert (out / "report.html").is_file() and (out / "run" / "comparison.json").is_file()
    # the run renders again with `cimtest report`, and the same table comes from `compare`
    again = run("report", out / "run", "-o", tmp_path / "again.html", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["sections"][0] == "setup"
    compared = run("compare", "mlp-8", "--fault", doc["fault"], "--chips", 20, "--images", 32,
                   "--steps", 5, "--json")
    assert compared.exit_code == 0, compared.output
    rows = json.loads(compared.stdout)
    keys = {"method", "ta", "te", "yl", "auc", "test_bytes", "forward_passes", "needs", "fit_s"}
    assert all(keys <= set(r) for r in rows)
    same = {r["method"]: r["ta"] for r in doc["rows"]}
    assert {r["method"]: r["ta"] for r in rows} == same  # same seeds: same verdicts


def test_compare_json_and_table_carry_ta_interval_and_ties_with_the_best(tiny_model):
    small = ("--fault", "mult:eta=0.25", "--chips", 20, "--eval-chips", 30, "--images", 16,
             "--steps", 3, "--btv-steps", 5, "--k", 2)
    result = run("compare", *tiny_model, *small, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    for row in rows:
        assert {"ta_low", "ta_high", "best", "p_vs_best", "tied_with_best"} <= set(row)
        assert 0 <= row["ta_low"] <= row["ta"] <= row["ta_high"] <= 100
        assert 0 < row["p_vs_best"] <= 1
        assert row["tied_with_best"] == (row["p_vs_best"] >= 0.05)
    (best,) = [r for r in rows if r["best"]]
    assert best["ta"] == max(r["ta"] for r in rows)
    assert best["p_vs_best"] == 1.0 and best["tied_with_best"]
    # the text table: TA with its interval and the tie mark, the p column, the footnote
    text = run("compare", *tiny_model, *small)
    assert text.exit_code == 0, text.output
    output = " ".join(text.stdout.split())  # the footnote may wrap
    assert f"{best['ta']:.1f} ({best['ta_low']:.1f}-{best['ta_high']:.1f})†" in output
    assert "p vs best" in output and f"tied with the best TA ({best['method']})" in output
    assert "McNemar's exact test" in output


def test_compare_with_a_drop_cutoff_passes_chips_within_it_of_the_ideal_chip(tiny_model,
                                                                               tmp_path):
    small = ("--fault", "mult:eta=0.25", "--chips", 20, "--eval-chips", 20, "--images", 16,
             "--steps", 3, "--btv-steps", 5, "--k", 2, "--cutoff", "D1")
    result = run("compare", *tiny_model, *small, "-o", tmp_path / "run")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "run" / "comparison.json").read_text())
    assert doc["cutoff_accuracy"] == pytest.approx(doc["ideal_accuracy"] - 1)
    train = np.asarray(doc["train_accuracy"])
    assert doc["rows"][0]["pass_fraction"] == pytest.approx(
        np.mean(train > doc["ideal_accuracy"] - 1))


def test_compare_and_report_errors(tmp_path):
    bad = run("compare", "mlp-8", "--fault", "mult:eta=0.1", "--chips", 5)
    assert bad.exit_code == 2 and "--chips" in bad.stderr
    k = run("compare", "mlp-8", "--fault", "mult:eta=0.1", "--k", 0)
    assert k.exit_code == 2 and "--k" in k.stderr
    cutoff = run("compare", "mlp-8", "--fault", "mult:eta=0.1", "--cutoff", "B50")
    assert cutoff.exit_code == 2 and "--cutoff" in cutoff.stderr
    missing = run("report", tmp_path, "-o", tmp_path / "r.html")
    assert missing.exit_code == 2 and "not a comparison run" in missing.stderr
    suffix = run("report", tmp_path, "-o", tmp_path / "r.txt")
    assert suffix.exit_code == 2 and ".html" in suffix.stderr
    assert not list(tmp_path.iterdir())


SMALL_CAMPAIGN = ("--fault", "mult:eta=0.1", "--chips", 8, "--test-images", 50)


def test_quiet_after_the_command_leaves_stderr_empty(tiny_model):
    loud = run("campaign", *tiny_model, *SMALL_CAMPAIGN)
    assert loud.exit_code == 0, loud.output
    assert "campaign" in loud.stderr  # the progress bar
    for args in (("campaign", *tiny_model, *SMALL_CAMPAIGN, "--quiet"),
                 ("campaign", *tiny_model, *SMALL_CAMPAIGN, "-q"),
                 ("-q", "campaign", *tiny_model, *SMALL_CAMPAIGN)):
        quiet = run(*args)
        assert quiet.exit_code == 0, quiet.output
        assert quiet.stderr == "" and "8 chips" in quiet.stdout


def test_progress_in_a_log_is_whole_lines(tiny_model, tmp_path):
    """Progress on a stderr that is not a terminal (CliRunner's, a file) is whole lines, not a
    bar cut to 80 columns: the description, done/total, the rate, and the time at the end."""
    result = run("campaign", *tiny_model, *SMALL_CAMPAIGN)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("campaign")]
    assert lines and not any(mark in result.stderr for mark in "━…")
    assert re.fullmatch(r"campaign: 8/8 chips, [0-9.,]+ chips/s, elapsed \d:\d\d:\d\d",
                        lines[-1]), lines
    log = tmp_path / "log.txt"  # a real process writing to a file: the same lines
    with log.open("w") as handle:
        done = subprocess.run([sys.executable, "-m", "cimtest", "campaign", *tiny_model,
                               *map(str, SMALL_CAMPAIGN)], stdout=subprocess.DEVNULL,
                              stderr=handle,
                              check=False, env={**os.environ, "COLUMNS": "40",
                                                "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, log.read_text()
    progress = [line for line in log.read_text().splitlines() if line.startswith("campaign")]
    assert progress[-1].startswith("campaign: 8/8 chips, ")


def test_progress_lines_come_at_most_every_ten_seconds_and_at_the_end(capsys):
    from cimtest.cli.common import PLAIN_PROGRESS_EVERY_S, _ProgressLines

    assert PLAIN_PROGRESS_EVERY_S == 10
    now = [0.0]
    lines = _ProgressLines("calibrating x", "chips", clock=lambda: now[0])
    for second in range(1, 26):  # one update a second: 18 chips/s over a pass of 896
        now[0] = float(second)
        lines.update(min(18 * second, 896), 896)
    lines.close()
    assert capsys.readouterr().err.splitlines() == [
        "calibrating x: 18/896 chips, 18 chips/s, ETA 0:00:49",  # the first update at once
        "calibrating x: 198/896 chips, 18 chips/s, ETA 0:00:39",  # 10 s later
        "calibrating x: 378/896 chips, 18 chips/s, ETA 0:00:29",
        "calibrating x: 450/896 chips, 18 chips/s, ETA 0:00:25",  # the end, not yet shown
    ]
    now[0] = 30.0
    lines.update(0, 896, "step 2")  # 5 s after the last line: not shown
    now[0] = 32.0
    lines.update(36, 896, "step 2")  # a new pass restarts the rate; a stage joins the label
    lines.close()
    assert capsys.readouterr().err.splitlines() == [
        "calibrating x: step 2: 36/896 chips, 18 chips/s, ETA 0:00:48"]


def test_verbose_is_a_repeatable_flag(tiny_model):
    plain = run("campaign", *tiny_model, *SMALL_CAMPAIGN, "-q", "--json")
    assert "INFO" not in plain.stderr
    info = run("campaign", *tiny_model, *SMALL_CAMPAIGN, "-q", "--json", "-v")
    assert info.exit_code == 0, info.output
    assert "INFO cimtest.loading: loaded clitiny:tiny" in info.stderr
    assert json.loads(info.stdout)["chips"] == 8  # logs never reach stdout
    for args in (("status", "missing.db", "-vv"), ("-v", "status", "missing.db", "--verbose")):
        assert run(*args).exit_code == 2
        assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    run("status", "missing.db")
    assert logging.getLogger().getEffectiveLevel() == logging.WARNING
    shown = next(line for line in run("campaign", "--help").stdout.splitlines()
                 if "--verbose" in line)
    assert "<int>" not in shown and "-vv" in shown


COMMAND_MODULES = ["main", "btv_cmd", "campaign_cmd", "compare_cmd", "demo_cmd", "egis_cmd",
                   "info_cmd", "report_cmd", "reproduce_cmd", "store_cmd", "zoo_cmd"]
HEAVY = ("torch", "pandas", "sklearn", "lightgbm", "matplotlib", "dask", "scipy", "numpy")


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_commands_import_no_heavy_library(module):
    """`cimtest --help` and argument errors stay fast: the heavy libraries are imported inside
    the commands that use them (benchmarks/cli.py times it). A fresh interpreter, not
    CliRunner: only a new process shows what importing a module pulls in."""
    code = (f"import sys, cimtest.cli.{module}; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""


def test_demo_refuses_an_output_that_is_a_file_before_any_work(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    result = run("demo", "-o", target)
    assert result.exit_code == 2
    assert "is not a folder" in result.stderr and target.read_text() == "x"
