"""`cimtest export | decide | apply` end to end on a tiny user model: the exported folder, the
verdicts from recorded responses and from each driver, CSV and STDF, and every refusal."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from clitools import error_line
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.main import app
from cimtest.engine import Population
from cimtest.tester.exported import INPUTS_FILE, MANIFEST_FILE, TEST_FILE

runner = CliRunner()
FAULT = "mult:eta=0.3"
CHIPS = 12

DRIVER = '''
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from cimtest.engine import Population
from cimtest.tester.drivers import SimulatedChip
from benchtiny import tiny


def _chips(n):
    model = tiny()
    model.load_state_dict(load_file(Path(__file__).parent / "tiny.safetensors"))
    population = Population(model, "mult:eta=0.3", seed=5, n=n)
    return [SimulatedChip(population, i) for i in range(n)]


def board():
    return {f"die-{i}": chip for i, chip in enumerate(_chips(3))}


class Broken:
    def run(self, inputs):
        raise RuntimeError("probe card lost contact")


class Wrong:
    def run(self, inputs):
        return np.zeros((len(inputs), 3), dtype=np.float32)


def broken():
    return [*_chips(2), Broken()]


def wrong():
    return [Wrong()]
'''


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A tiny model (module:factory + weights), a driver module beside it, a fitted BTV test
    and its exported folder."""
    root = tmp_path_factory.mktemp("bench")
    with factory_module(root, "benchtiny") as model:
        (root / "benchdriver.py").write_text(DRIVER)
        model_args = ("--model", "benchtiny:tiny", "--weights", root / "tiny.safetensors")
        test = root / "btv.safetensors"
        assert run("btv", "fit", "benchtiny:tiny", "--weights", root / "tiny.safetensors",
                   "-o", test, "--steps", 40).exit_code == 0
        exported = root / "exported"
        result = run("export", test, *model_args, "-o", exported, "--json")
        assert result.exit_code == 0, result.output
        yield {"root": root, "model": model, "args": model_args, "test": test,
               "exported": exported, "summary": json.loads(result.stdout)}


def _responses(bench, seed=1, n=CHIPS) -> np.ndarray:
    inputs = torch.from_numpy(np.load(bench["exported"] / INPUTS_FILE))
    return Population(bench["model"], FAULT, seed=seed, n=n).outputs(inputs).numpy()


def test_export_writes_what_a_tester_loads(bench):
    folder, summary = bench["exported"], bench["summary"]
    inputs = np.load(folder / INPUTS_FILE, allow_pickle=False)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert inputs.dtype == np.float32 and inputs.shape == (1, 1, 8, 8)
    assert (folder / TEST_FILE).is_file() and list((folder / "inputs").glob("*.png"))
    assert manifest["response_shape"] == [None, 1, 10] == summary["response_shape"]
    assert manifest["method"] == "btv" and manifest["decision"]["flag_word"] == "uncertain"
    assert manifest["ideal_score"] == pytest.approx(manifest["decision"]["threshold"])
    assert manifest["ideal_flagged"] is False  # the ideal chip passes its own test
    ideal = Population(bench["model"], "none").outputs(torch.from_numpy(inputs))[0]
    np.testing.assert_array_equal(np.asarray(manifest["ideal_responses"], np.float32), ideal)


def test_decide_on_recorded_responses_matches_apply(bench, tmp_path):
    responses = tmp_path / "responses.npy"
    np.save(responses, _responses(bench))
    decided = run("decide", bench["exported"], "--responses", responses, "--json",
                  "-o", tmp_path / "v.csv", "--stdf", tmp_path / "v.stdf")
    applied = run("apply", bench["exported"], *bench["args"], "--fault", FAULT, "--chips",
                  CHIPS, "--seed", 1, "--json")
    rows = json.loads(decided.stdout)["rows"]
    assert decided.exit_code == applied.exit_code == (1 if any(
        r["verdict"] == "uncertain" for r in rows) else 0), decided.output
    assert rows == json.loads(applied.stdout)["rows"] and len(rows) == CHIPS
    assert {r["verdict"] for r in rows} <= {"pass", "uncertain"}
    table = pd.read_csv(tmp_path / "v.csv", dtype={"chip": str})
    assert table["chip"].tolist() == [r["chip"] for r in rows]
    assert table["score"].tolist() == [r["score"] for r in rows]
    assert (tmp_path / "v.stdf").stat().st_size > 0


def test_table_and_chip_ids_give_the_same_verdicts(bench, tmp_path):
    outputs = _responses(bench, n=4)
    np.save(tmp_path / "r.npy", outputs)
    (tmp_path / "ids.txt").write_text("w1-a\nw1-b\nw2-a\nw2-b\n")
    by_ids = run("decide", bench["exported"], "--responses", tmp_path / "r.npy",
                 "--chip-ids", tmp_path / "ids.txt", "--json")
    long = pd.DataFrame([{"chip": chip, "input": 0, **{f"out_{m}": outputs[c, 0, m]
                                                        for m in range(10)}}
                         for c, chip in enumerate(["w1-a", "w1-b", "w2-a", "w2-b"])])
    long.iloc[::-1].to_csv(tmp_path / "r.csv", index=False)  # any row order
    by_table = run("decide", bench["exported"], "--responses", tmp_path / "r.csv", "--json")
    played = run("apply", bench["exported"], "--chip", tmp_path / "r.npy", "--json")
    rows = json.loads(by_ids.stdout)["rows"]
    assert [r["chip"] for r in rows] == ["w1-a", "w1-b", "w2-a", "w2-b"]
    table_rows = sorted(json.loads(by_table.stdout)["rows"], key=lambda r: r["chip"])
    assert [r["verdict"] for r in table_rows] == [r["verdict"] for r in rows]
    assert [r["verdict"] for r in json.loads(played.stdout)["rows"]] == \
        [r["verdict"] for r in rows]


def test_a_users_driver_runs_the_chips(bench, tmp_path, monkeypatch):
    monkeypatch.chdir(bench["root"])
    board = run("apply", bench["exported"], "--chip", "benchdriver:board", "--json")
    rows = json.loads(board.stdout)["rows"]
    assert [r["chip"] for r in rows] == ["die-0", "die-1", "die-2"]
    expected = run("apply", bench["exported"], *bench["args"], "--fault", FAULT, "--chips", 3,
                   "--seed", 5, "--json")
    assert [r["score"] for r in rows] == [r["score"] for r in json.loads(expected.stdout)["rows"]]
    out = tmp_path / "kept.csv"
    line = error_line(run("apply", bench["exported"], "--chip", "benchdriver:broken", "-q",
                          "-o", out))
    assert "chip 2" in line and "probe card lost contact" in line
    assert pd.read_csv(out)["chip"].tolist() == [0, 1]  # the verdicts given before it
    line = error_line(run("apply", bench["exported"], "--chip", "benchdriver:wrong", "-q"))
    assert "chip 0" in line and "(1, 3)" in line and "(1, 10)" in line


def test_bad_responses_are_refused_in_one_line(bench, tmp_path):
    good = _responses(bench, n=4)
    cases = {
        "shape": (good[:, :, :5], "shape"),
        "nan": (np.where(np.arange(10) == 3, np.nan, good), "NaN"),
        "another-test": (-3.0 * good, "do not look like this test's"),
    }
    for name, (array, words) in cases.items():
        np.save(tmp_path / f"{name}.npy", array)
        line = error_line(run("decide", bench["exported"], "--responses",
                              tmp_path / f"{name}.npy", "-o", tmp_path / f"{name}.csv"))
        assert words in line, (name, line)
        assert not (tmp_path / f"{name}.csv").exists()
    np.save(tmp_path / "good.npy", good)
    (tmp_path / "dup.txt").write_text("a\nb\na\nc\n")
    assert "a" in error_line(run("decide", bench["exported"], "--responses",
                                 tmp_path / "good.npy", "--chip-ids", tmp_path / "dup.txt"))
    forced = run("decide", bench["exported"], "--responses", tmp_path / "another-test.npy",
                 "--force")
    assert forced.exit_code in (0, 1)
    line = error_line(run("decide", bench["exported"], "--responses", tmp_path / "good.npy",
                          "--stdf", tmp_path / "missing" / "v.stdf"))
    assert "missing" in line


def test_an_edited_export_is_refused(bench, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bench["exported"], copy)
    np.save(tmp_path / "r.npy", _responses(bench, n=2))
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["decision"]["threshold"] = 1e9
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert "digest" in error_line(run("decide", copy, "--responses", tmp_path / "r.npy"))
    shutil.copytree(bench["exported"], copy, dirs_exist_ok=True)
    inputs = np.load(copy / INPUTS_FILE)
    np.save(copy / INPUTS_FILE, inputs + 1)
    assert "inputs.npy" in error_line(run("decide", copy, "--responses", tmp_path / "r.npy"))



def test_export_for_a_dac_writes_the_integer_codes(bench, tmp_path):
    """A 4-bit DAC takes codes in [-7, 7]; codes × scale is the input the chip is driven
    with, within half a step of the float input; the ideal responses are the chip's on
    that periphery."""
    folder = tmp_path / "dac"
    result = run("export", bench["test"], *bench["args"], "-o", folder, "--hardware",
                 "dac_bits=4")
    assert result.exit_code == 0, result.output
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    codes = np.load(folder / "codes.npy", allow_pickle=False)
    inputs = np.load(folder / INPUTS_FILE, allow_pickle=False)
    quantisation = manifest["input_quantisation"]
    scale = np.asarray(quantisation["scale"], dtype=np.float32).reshape(-1, 1, 1, 1)
    assert codes.dtype == np.int32 and codes.shape == inputs.shape
    assert np.abs(codes).max() == 7 and quantisation["dac_bits"] == 4
    assert np.abs(codes * scale - inputs).max() <= scale.max() / 2 + 1e-6
    assert manifest["hardware"] == "dac_bits=4" and "codes.npy" in manifest["files"]
    driven = torch.from_numpy((codes * scale).astype(np.float32))
    ideal = Population(bench["model"], "none", periphery="dac_bits=4").outputs(driven)[0]
    np.testing.assert_allclose(np.asarray(manifest["ideal_responses"]), ideal.numpy(),
                               rtol=1e-5, atol=1e-5)
    assert run("export", bench["test"], *bench["args"], "-o", tmp_path / "bad",
               "--hardware", "dac_bits=1").exit_code == 2
