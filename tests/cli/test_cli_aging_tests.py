"""`--at` on `compare`, `btv evaluate` and `egis evaluate`: tests fitted at t = 0 scored on
the same evaluation chips at each age, rows with t, the t = 0 rows equal to the command on
a spec at t = 0, and the refusals (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import os
from itertools import pairwise

import pytest
from clitools import error_line
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.main import app

runner = CliRunner()
AGING = "mult:eta=0.1+drift:nu=0.3,nu_sd=0.1"
AGES = [0.0, 86400.0, 31557600.0]
COMPARE = ("--chips", 12, "--eval-chips", 16, "--images", 16, "--steps", 2, "--btv-steps", 3,
           "--k", 2, "--input-range", "-1,1")
BTV = ("--chips", 12, "--fresh", 20, "--fresh-per-chip", 0, "--test-images", 60)
TIMED = {"fit_s", "eval_fault", "t"}
"""Keys of a compare row that differ between two runs of the same chips (fit seconds) or name
the spec as written."""


def run(*args):
    return runner.invoke(app, ["-q", *map(str, args)])


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The tiny model, a Bayesian test vector and an EGIS test fitted on AGING at t = 0."""
    root = tmp_path_factory.mktemp("agingtests")
    with factory_module(root, "agingteststiny"):
        model = ["agingteststiny:tiny", "--weights", str(root / "tiny.safetensors")]
        btv, egis = root / "btv.safetensors", root / "egis"
        assert run("btv", "fit", *model, "--steps", 30, "-o", btv).exit_code == 0
        fitted = run("egis", "fit", *model, "--fault", AGING + ",t=0", "--chips", 32,
                     "--images", 16, "--steps", 5, "--k", 2, "--cutoff", "A50",
                     "--input-range", "-1,1", "-o", egis)
        assert fitted.exit_code == 0, fitted.output
        yield {"model": model, "btv": btv, "egis": egis}


def non_increasing(values: list[float]) -> bool:
    """Whether each value is at most the one before."""
    return all(b <= a for a, b in pairwise(values))


def test_compare_at_scores_the_tests_fitted_at_t0_on_each_age(kit):
    result = run("compare", *kit["model"], "--fault", AGING, *COMPARE, "--at", "0,1d,1y",
                 "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    assert [r["t"] for r in rows] == [t for t in AGES for _ in methods]
    assert len({r["pass_fraction"] for r in rows}) == 1  # one A_cutoff, the training chips'
    first = {t: next(r for r in rows if r["t"] == t) for t in AGES}
    assert non_increasing([first[t]["eval_accuracy_mean"] for t in AGES])
    assert non_increasing([first[t]["eval_pass_fraction"] for t in AGES])
    assert first[AGES[-1]]["eval_accuracy_mean"] < first[0.0]["eval_accuracy_mean"]
    assert "drift:t=86400.0" in first[86400.0]["eval_fault"]
    once = run("compare", *kit["model"], "--fault", AGING + ",t=0", *COMPARE, "--json")
    assert once.exit_code == 0, once.output
    plain = [{k: v for k, v in r.items() if k not in TIMED} for r in json.loads(once.stdout)]
    assert [{k: v for k, v in r.items() if k not in TIMED} for r in rows[:len(methods)]] == plain


def test_compare_at_on_an_eval_fault_prints_one_table_per_age(kit):
    """A static training spec, the evaluation chips under a spec that ages: --at applies to
    each --eval-fault."""
    result = run("compare", *kit["model"], "--fault", "mult:eta=0.1", "--eval-fault", AGING,
                 *COMPARE, "--at", "0,1y")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "at t = 0 s" in text and "at t = 3.15576e+07 s" in text
    assert text.count("evaluated under") == 2


def test_btv_evaluate_at_scores_every_fault_at_every_age(kit, tmp_path):
    csv = tmp_path / "rows.csv"
    args = ("btv", "evaluate", kit["btv"], "--model", *kit["model"], *BTV)
    result = run(*args, "--fault", AGING, "--fault", "drift:nu=0.1", "--at", "0,1d,1y",
                 "--json", "-o", csv)
    assert result.exit_code == 0, result.output
    assert not result.stderr  # -q: no progress bars or notes
    rows = json.loads(result.stdout)
    assert [(r["t"], r["fault"]) for r in rows] == [
        (t, kind) for t in AGES for kind in ("mult+drift", "drift")]
    assert non_increasing([r["accuracy_mean"] for r in rows if r["fault"] == "mult+drift"])
    assert len({r["sigma_ideal"] for r in rows}) == 1  # the threshold set at t = 0
    assert (tmp_path / "rows-coverage-t86400s.csv").is_file()
    assert (tmp_path / "rows-coverage-t31557600s.csv").is_file()
    once = run(*args, "--fault", AGING + ",t=0", "--fault", "drift:nu=0.1,t=0", "--json")
    assert once.exit_code == 0, once.output
    assert [{k: v for k, v in r.items() if k != "t"} for r in rows[:2]] == json.loads(
        once.stdout)
    text = run(*args, "--fault", AGING, "--at", "1h,1d")
    assert text.exit_code == 0, text.output
    assert "at t = 3600 s:" in text.stdout and "at t = 86400 s:" in text.stdout


def test_egis_evaluate_at_keeps_the_cutoff_of_t0(kit):
    args = ("egis", "evaluate", kit["egis"], "--model", *kit["model"], "--chips", 16)
    result = run(*args, "--at", "0,1d,1y", "--json")
    assert result.exit_code == 0, result.output
    assert not result.stderr
    rows = json.loads(result.stdout)
    assert [r["t"] for r in rows] == AGES
    assert len({r["cutoff_accuracy"] for r in rows}) == 1
    assert non_increasing([r["accuracy_mean"] for r in rows])
    assert rows[-1]["truly_pass"] < rows[0]["truly_pass"]  # a chip that ages fails
    once = run(*args, "--fault", AGING + ",t=0", "--json")
    assert once.exit_code == 0, once.output
    (plain,) = json.loads(once.stdout)
    assert {k: v for k, v in rows[0].items() if k not in {"t", "fault"}} == {
        k: v for k, v in plain.items() if k != "fault"}
    text = run(*args, "--at", "1h,1y")
    assert text.exit_code == 0, text.output
    assert "at t = 3600 s" in text.stdout and "at t = 3.15576e+07 s" in text.stdout


BAD = [
    (["--at", "1d,1h"], "--at: times must increase"),
    (["--at", "-1h"], "--at: a time since programming is finite and not"),
    (["--at", "1h,2x"], "--at: unknown time unit 'x'"),
]


@pytest.mark.parametrize("args, message", [
    *((["--fault", AGING, *a], m) for a, m in BAD),
    (["--fault", "mult:eta=0.1", "--at", "1h"], "--at needs a fault with a time model"),
    (["--fault", "mult:eta=0.1", "--eval-fault", "bitflip:p=1e-3", "--at", "1h"],
     "'bitflip:p=1e-3' has none"),
    (["--fault", "drift:nu=0.1", "--drop", "2", "--at", "1h"], "--drop calibrates"),
    (["--fault", AGING, "--at", "1h,1d", "-o", "run"], "one --at age"),
])
def test_compare_refuses(kit, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert message in error_line(run("compare", *kit["model"], *args, *COMPARE))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    *((["--fault", AGING, *a], m) for a, m in BAD),
    (["--fault", AGING, "--fault", "mult:eta=0.1", "--at", "1h"],
     "--at needs a fault with a time model"),
    (["--fault", AGING, "--at", "1h", "--plot", "p.png"], "--plot draws"),
])
def test_btv_evaluate_refuses(kit, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run("btv", "evaluate", kit["btv"], "--model", *kit["model"], *args, "-o", "r.csv")
    assert message in error_line(result)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    *BAD,
    (["--fault", "mult:eta=0.1", "--at", "1h"], "--at needs a fault with a time model"),
    (["--at", "1h", "--plot", "p.png"], "--plot draws"),
    (["--at", "1h", "--seed", "0"], "fitted on chips of seed 0"),
])
def test_egis_evaluate_refuses(kit, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run("egis", "evaluate", kit["egis"], "--model", *kit["model"], *args,
                 "-o", "r.csv")
    assert message in error_line(result)
    assert os.listdir(tmp_path) == []
