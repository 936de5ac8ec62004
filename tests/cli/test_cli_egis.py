"""`cimtest egis fit | evaluate | apply` end to end on a tiny model: files, JSON, exit codes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import factory_module
from safetensors import safe_open
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


FIT = ("--fault", FAULT, "--chips", 48, "--images", 32, "--steps", 10, "--batch", 16,
       "--splits", 1, "--rho", 0.7, "--test-images", 100, "--json")


@pytest.fixture(scope="module")
def fitted(tiny):
    path = tiny["root"] / "test"
    result = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o", path, "--k", "2,3",
                 "--cutoff", "A40,A60", "--store", tiny["root"] / "store", *FIT)
    assert result.exit_code == 0, result.output
    return path, json.loads(result.stdout)


def test_fit_writes_test_set_and_reports(fitted):
    path, report = fitted
    members = report["members"]
    assert [(m["cutoff"], m["k"]) for m in members] == [("A40", 2), ("A40", 3), ("A60", 2),
                                                        ("A60", 3)]
    for m in members:
        folder = path / m["dir"]
        assert (folder / "test.safetensors").is_file()
        assert (folder / "reward.png").is_file() and (folder / "images.png").is_file()
        assert len(m["chosen"]) == m["k"] and 0 < m["passed"] < 48
    assert members[0]["passed"] < members[2]["passed"]  # A60 passes more chips than A40
    for m in members:  # ties at A_cutoff fail, so at most p % pass
        assert m["pass_fraction"] == pytest.approx(m["passed"] / 48)
        assert 0 < m["pass_fraction"] <= int(m["cutoff"][1:]) / 100
    assert (path / "sid.safetensors").is_file() and (path / "entropy.png").is_file()
    assert (path / "grid.json").is_file()


def test_fit_reuses_its_store(tiny, fitted):
    """A second fit on the same store reads the campaigns back: the same tests."""
    _path, report = fitted
    again = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o", tiny["root"] / "again",
                "--k", "3", "--cutoff", "A60", "--store", tiny["root"] / "store", *FIT)
    assert again.exit_code == 0, again.output
    (member,) = json.loads(again.stdout)["members"]
    assert member["chosen"] == report["members"][3]["chosen"]
    sid = tiny["root"] / "test" / "sid.safetensors"
    reused = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o", tiny["root"] / "s",
                 "--k", "3", "--cutoff", "A60", "--sid", sid, *FIT[:4], "--images", 999,
                 *FIT[6:])
    assert reused.exit_code == 0, reused.output  # --images comes from the SID
    assert json.loads(reused.stdout)["members"][0]["chosen"] == member["chosen"]
    alien = run("fit", tiny["spec"], "--weights", tiny["chip"], "-o", tiny["root"] / "a",
                "--sid", sid, *FIT)
    assert alien.exit_code == 2 and "fingerprint" in alien.output
    other = run("fit", tiny["spec"], "--weights", tiny["weights"], "-o", tiny["root"] / "o",
                "--store", tiny["root"] / "store", *FIT[:-3], "--test-images", 90)
    assert other.exit_code == 2 and "store" in other.output.lower()


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
    csv, png = tiny["root"] / "rows.csv", tiny["root"] / "fig5.png"
    result = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
                 "--chips", 16, "--seed", 5, "--test-images", 100, "--json", "-o", csv,
                 "--plot", png)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["cutoff"], r["k"]) for r in rows] == [("A40", 2), ("A40", 3), ("A60", 2),
                                                     ("A60", 3)]
    for row in rows:
        assert {"cutoff", "k", "ta", "te", "yl", "cte", "bte"} <= set(row)
        assert row["chips"] == 16 and row["ta"] + row["te"] + row["yl"] == pytest.approx(100.0)
    assert csv.read_text().count("\n") == 5 and png.read_bytes()[:4] == b"\x89PNG"
    some = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
               "--chips", 16, "--seed", 5, "--test-images", 100, "--json", "--k", 3,
               "--cutoff", "a60")
    (row,) = json.loads(some.stdout)
    assert (row["cutoff"], row["k"], row["ta"]) == ("A60", 3, rows[3]["ta"])
    none = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
               "--k", 16)
    assert none.exit_code == 2 and "A40-k2" in none.output
    same = run("evaluate", path, "--model", tiny["spec"], "--weights", tiny["weights"],
               "--chips", 16, "--seed", 0)
    assert same.exit_code == 2 and "independent" in same.output


def expected_verdict(testdir, weights) -> str:
    """The verdict the Python API gives the chip with these weights (the CLI must agree)."""
    from cimtest.engine import Population
    from cimtest.loading import load_model
    from cimtest.methods.egis import EntropyImageTest

    chip = load_model("egistiny:tiny", weights=weights)
    test = EntropyImageTest.load(Path(testdir) / "test.safetensors")
    signature = test.respond(Population(chip.module, "none", n=1).outputs(test.images_))
    return "fail" if test.decide(signature)[0] else "pass"


def test_apply_exit_codes(tiny, fitted):
    set_path, _ = fitted
    several = run("apply", set_path, "--model", tiny["spec"], "--weights", tiny["weights"])
    assert several.exit_code == 2 and "--k" in several.output
    path = set_path / "A40-k2"
    ok = run("apply", set_path, "--k", 2, "--cutoff", "A40", "--model", tiny["spec"],
             "--weights", tiny["weights"], "--json")
    assert ok.exit_code == {"pass": 0, "fail": 1}[expected_verdict(path, tiny["weights"])]
    assert json.loads(ok.stdout)["rows"][0]["verdict"] == ("pass" if ok.exit_code == 0 else "fail")
    refused = run("apply", path, "--model", tiny["spec"], "--weights", tiny["chip"])
    assert refused.exit_code == 2 and "--reference MODEL" in refused.output  # the fix, not force
    chip = run("apply", path, "--model", tiny["spec"], "--weights", tiny["chip"],
               "--reference", tiny["spec"], "--reference-weights", tiny["weights"])
    assert chip.exit_code == {"pass": 0, "fail": 1}[expected_verdict(path, tiny["chip"])]
    assert run("apply", tiny["root"] / "missing", "--model", tiny["spec"], "--weights",
               tiny["weights"]).exit_code == 2


SMALL_FIT = ("--fault", FAULT, "--chips", 24, "--images", 16, "--steps", 5, "--batch", 8,
             "--splits", 1, "--rho", 0.5, "--k", 2, "--cutoff", "A50", "--json")


def test_fit_input_range_from_data_or_option(tiny, tmp_path):
    """The synthetic images lie in --input-range, else in the min..max of --data, else in
    (-1, 1) with a warning for a user model."""
    from sklearn.datasets import load_digits

    from cimtest.data import load_data

    npz = tmp_path / "digits.npz"
    digits = load_digits()
    np.savez(npz, x=(digits.images[:120] / 16).astype(np.float32), y=digits.target[:120])
    x = load_data(npz, (1, 8, 8)).x
    model = (tiny["spec"], "--weights", tiny["weights"])
    cases = ((("--data", npz), [x.min().item(), x.max().item()]),
             (("--input-range", "-0.5,0.25"), [-0.5, 0.25]),
             ((), [-1.0, 1.0]))  # a user model's digits: no range known
    for i, (extra, expected) in enumerate(cases):
        out = tmp_path / f"test{i}"
        result = run("fit", *model, "-o", out, *extra, *SMALL_FIT, "--quiet")
        assert result.exit_code == 0, result.output
        if extra:
            assert result.stderr == ""  # no warning, no progress
        else:
            assert "no input range known" in result.stderr and "--input-range" in result.stderr
        assert json.loads(result.stdout)["input_range"] == pytest.approx(expected)
        with safe_open(out / "sid.safetensors", "pt") as sid:
            images = sid.get_tensor("sid")
        assert expected[0] <= images.min() < images.max() <= expected[1]


@pytest.mark.parametrize("value", ["1,1", "2,1", "1", "a,b", "0,1,2", "nan,1"])
def test_fit_rejects_bad_input_range(tiny, value):
    result = runner.invoke(app, ["fit", tiny["spec"], "--weights", str(tiny["weights"]), "-o",
                                 str(tiny["root"] / "r"), f"--input-range={value}"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--input-range must be two numbers LO,HI" in lines[0]
    assert not (tiny["root"] / "r").exists()


def test_fit_fixed_splits_are_recorded_in_the_test(tiny, tmp_path):
    """--fixed-splits fits with the splits drawn once; the default re-splits (Algorithm 1)."""
    from cimtest.methods.egis import EntropyImageTest

    model = (tiny["spec"], "--weights", tiny["weights"])
    for flag, resplit in (((), True), (("--fixed-splits",), False)):
        out = tmp_path / f"set-{resplit}"
        result = run("fit", *model, "-o", out, *SMALL_FIT, *flag)
        assert result.exit_code == 0, result.output
        test = EntropyImageTest.load(out / "A50-k2" / "test.safetensors")
        assert test.resplit is resplit
