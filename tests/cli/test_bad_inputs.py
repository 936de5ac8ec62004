"""Bad inputs through the command line, as a new user would type them: fault specs,
populations, models and weights, data, artefacts and stores. Every one is refused with exit
code 2 and a single line on stderr that names the problem, with no traceback and nothing
left in the working folder (no output, no temporary file, no store).

The artefacts (a Bayesian test vector, an EGIS test set, a comparison RUN folder, a campaign
store) are made once per module on a tiny MLP, then edited or corrupted per case.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import factory_module
from safetensors.torch import save_file
from typer.testing import CliRunner

from cimtest.cli.main import app

runner = CliRunner()

FAULT = "mult:eta=0.3"


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """Paths of the tiny model, its artefacts and the bad files every case draws from."""
    root = tmp_path_factory.mktemp("kit")
    with factory_module(root, "badtiny") as model:
        weights = root / "tiny.safetensors"
        kit = {"root": root, "weights": weights, "model": ["badtiny:tiny", "--weights", weights]}
        _make_artefacts(kit)
        _make_bad_files(kit, model)
        yield kit


def _cli(*args) -> None:
    result = runner.invoke(app, ["-q", *map(str, args)])
    assert result.exit_code == 0, result.output


def _make_artefacts(kit: dict) -> None:
    root, model = kit["root"], kit["model"]
    kit["btv"] = root / "btv.safetensors"
    _cli("btv", "fit", *model, "--steps", 5, "-o", kit["btv"])
    kit["egis"] = root / "egis"
    _cli("egis", "fit", *model, "--fault", FAULT, "--chips", 16, "--images", 16, "--steps", 5,
         "--k", "2,3", "--input-range", "-1,1", "-o", kit["egis"])
    kit["run"] = root / "run"
    _cli("compare", *model, "--fault", FAULT, "--chips", 10, "--eval-chips", 8, "--images", 16,
         "--steps", 5, "--btv-steps", 5, "--k", 2, "--input-range", "-1,1", "-o", kit["run"])
    kit["store"] = root / "store.db"
    _cli("campaign", *model, "--fault", FAULT, "--chips", 8, "--store", kit["store"])

    # edited and corrupted copies
    threshold = rb'\"thresholds\": {\"threshold\": '  # the JSON is a string in the header
    kit["btv_edited"] = _edited_copy(kit["btv"], root / "btv-edited.safetensors", threshold,
                                     lambda t: t.replace(threshold, threshold[:-1] + b"9"))
    data = bytearray(kit["btv"].read_bytes())
    data[-1] ^= 0x01
    kit["btv_flipped"] = root / "btv-flipped.safetensors"
    kit["btv_flipped"].write_bytes(bytes(data))
    kit["btv_truncated"] = root / "btv-truncated.safetensors"
    kit["btv_truncated"].write_bytes(kit["btv"].read_bytes()[:200])

    kit["egis_index"] = shutil.copytree(kit["egis"], root / "egis-index")
    index = kit["egis_index"] / "grid.json"
    index.write_text(index.read_text().replace('"steps": 5', '"steps": 6'))
    kit["egis_member"] = shutil.copytree(kit["egis"], root / "egis-member")
    member = kit["egis_member"] / "A50-k2" / "test.safetensors"
    _edited_copy(member, member, rb'\"threshold\": 0.5',
                 lambda t: t.replace(rb'\"threshold\": 0.5', rb'\"threshold\": 0.9'))
    kit["egis_detector"] = shutil.copytree(kit["egis"], root / "egis-detector")
    _edit_detector(kit["egis_detector"] / "A50-k2" / "test.safetensors")
    kit["egis_swapped"] = shutil.copytree(kit["egis"], root / "egis-swapped")
    shutil.rmtree(kit["egis_swapped"] / "A50-k2")
    shutil.copytree(kit["egis"] / "A50-k3", kit["egis_swapped"] / "A50-k2")
    kit["sid_edited"] = _edited_copy(kit["egis"] / "sid.safetensors", root / "sid.safetensors",
                                     rb'\"steps\": 5',
                                     lambda t: t.replace(rb'\"steps\": 5', rb'\"steps\": 6'))

    kit["run_edited"] = shutil.copytree(kit["run"], root / "run-edited")
    doc = kit["run_edited"] / "comparison.json"
    text = doc.read_text()
    first_ta = text.index('"ta": ') + len('"ta": ')
    doc.write_text(text[:first_ta] + "99" + text[first_ta + 2:])


def _edit_detector(path) -> None:
    """Change one digit of a leaf value inside the LightGBM model stored in the artefact."""
    data = bytearray(path.read_bytes())
    at = data.index(b"leaf_value=") + len(b"leaf_value=")
    while not chr(data[at]).isdigit():
        at += 1
    data[at] = ord("1") if data[at] != ord("1") else ord("2")
    path.write_bytes(bytes(data))


def _edited_copy(source, target, anchor: bytes, edit) -> object:
    """Copy `source` to `target` with its safetensors JSON header edited in place by `edit`
    (bytes -> bytes), padded to the same length, as a hex editor would."""
    data = source.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = data[8:8 + size]
    assert anchor in header
    edited = edit(header)
    edited = edited[:size] if len(edited) >= size else edited + b" " * (size - len(edited))
    target.write_bytes(data[:8] + edited + data[8 + size:])
    return target


class Payload:
    """Pickled, it would create a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _make_bad_files(kit: dict, model: torch.nn.Module) -> None:
    root = kit["root"]
    kit["garbage"] = root / "garbage.safetensors"
    kit["garbage"].write_bytes(b"\x00\x01 not a safetensors file")
    other = {k: torch.zeros(3, 3) for k in model.state_dict()}
    save_file(other, root / "other-shapes.safetensors")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["1.weight"][0, 0] = float("nan")
    save_file(state, root / "nan.safetensors")
    kit["marker"] = root / "payload-ran"
    torch.save({"1.weight": Payload(kit["marker"])}, root / "payload.pt")
    np.savez(root / "shape.npz", x=np.zeros((4, 3, 32, 32), np.float32), y=np.zeros(4, np.int64))
    np.savez(root / "nolabels.npz", x=np.zeros((4, 1, 8, 8), np.float32))
    np.savez(root / "labels.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.full(4, 99))
    (root / "garbage.npz").write_bytes(b"not a zip")
    (root / "empty-folder").mkdir()
    (root / "bad.toml").write_text("[[fault]\nkind = 'mult'")
    (root / "unknown.toml").write_text("[[fault]]\nkind = 'warp'\n")
    (root / "not-a-store.db").write_text("not sqlite")


M = "@model"
"""Stands for MODEL --weights WEIGHTS of the tiny model in a case's arguments."""

CASES = {
    # fault specs
    "spec-unknown-key": (["campaign", M, "--fault", "mult:eat=0.1"],
                         ["unknown key 'eat'", "cimtest help faults"]),
    "spec-unknown-kind": (["campaign", M, "--fault", "warp:x=1"], ["unknown fault 'warp'"]),
    "spec-out-of-range": (["campaign", M, "--fault", "bitflip:p=2"], ["'p' parameter"]),
    "spec-empty-term": (["campaign", M, "--fault", "mult:eta=0.1++bitflip:p=0.1"],
                        ["empty term"]),
    "spec-zero-fraction": (["campaign", M, "--fault", "mult:eta=0.1@layers=0.0"], ["fraction"]),
    "spec-unknown-layer": (["campaign", M, "--fault", "mult:eta=0.1@layers=conv9"],
                           ["unknown layer 'conv9'"]),
    "spec-modifier-twice": (["compare", M, "--fault", "bitflip:p=1e-3@per-read@per-read"],
                            ["given twice"]),
    "spec-toml-invalid": (["campaign", M, "--fault", "{root}/bad.toml"], ["not valid TOML"]),
    "spec-toml-unknown": (["campaign", M, "--fault", "{root}/unknown.toml"],
                          ["unknown fault 'warp'", "cimtest help faults"]),
    "spec-toml-missing": (["campaign", M, "--fault", "{root}/none.toml"],
                          ["cannot read fault file"]),
    "spec-calibrate-level": (["calibrate", M, "--fault", "warp"], ["unknown fault 'warp'"]),
    "spec-btv-evaluate": (["btv", "evaluate", "{btv}", "--model", *M.split(), "--fault",
                           "mult:eta=-1", "--chips", "8"], ["'eta' parameter"]),
    "help-unknown-topic": (["help", "fault"], ["no help topic 'fault'"]),
    # populations
    "chips-zero": (["campaign", M, "--fault", FAULT, "--chips", "0"], ["--chips"]),
    "seed-negative": (["campaign", M, "--fault", FAULT, "--seed", "-1"],
                      ["--seed must be an integer from 0 to 2147483647; got -1"]),
    "seed-too-large": (["egis", "fit", M, "-o", "t", "--seed", "2147483648"], ["--seed"]),
    "eval-seed-negative": (["compare", M, "--fault", FAULT, "--eval-seed", "-1"],
                           ["--eval-seed"]),
    "zoo-train-seed": (["zoo", "train", "mlp-8", "--seed", "-5"], ["--seed"]),
    "memory-tiny": (["campaign", M, "--fault", FAULT, "--memory", "1KB"],
                    ["below what one micro-batch of 8 chips needs", "give --memory"]),
    "memory-tiny-egis": (["egis", "fit", M, "-o", "t", "--fault", FAULT, "--memory", "1KB",
                          "--input-range", "-1,1"], ["micro-batch"]),
    "memory-malformed": (["campaign", M, "--fault", FAULT, "--memory", "lots"], ["2GB"]),
    "memory-zero": (["calibrate", M, "--fault", "mult", "--memory", "0"], ["positive"]),
    "array-size-zero": (["campaign", M, "--fault", FAULT, "--array-size", "0x8"], ["positive"]),
    "array-size-one-number": (["campaign", M, "--fault", FAULT, "--array-size", "8"],
                              ["128x128"]),
    "bits-per-cell": (["campaign", M, "--fault", FAULT, "--bits-per-cell", "3"],
                      ["bits_per_cell"]),
    "dask-unreachable": (["campaign", M, "--fault", FAULT, "--dask", "tcp://127.0.0.1:1"],
                         ["cannot reach the Dask scheduler"]),
    "dask-malformed": (["campaign", M, "--fault", FAULT, "--dask", "locale"], ["--dask"]),
    "new-without-store": (["campaign", M, "--fault", FAULT, "--new"], ["--store"]),
    "egis-few-chips": (["egis", "fit", M, "-o", "t", "--chips", "2"], ["at least 4"]),
    "egis-cutoff": (["egis", "fit", M, "-o", "t", "--cutoff", "B50"], ["A50"]),
    "egis-k-too-large": (["egis", "fit", M, "-o", "t", "--fault", FAULT, "--k", "20",
                          "--images", "16", "--input-range", "-1,1"], ["below the number"]),
    "calibrate-drop": (["calibrate", M, "--fault", "mult", "--drop", "a,b"], ["--drop"]),
    "compare-few-chips": (["compare", M, "--fault", FAULT, "--chips", "5"], ["--chips"]),
    "compare-learned-steps-alone": (["compare", M, "--fault", FAULT, "--learned-steps", "5"],
                                    ["add --learned"]),
    "compare-learned-batch-one": (["compare", M, "--fault", FAULT, "--learned",
                                   "--learned-batch", "1"], ["--learned-batch at least 2"]),
    "input-range": (["compare", M, "--fault", FAULT, "--input-range", "1,1"], ["LO,HI"]),
    # models and weights
    "zoo-unknown": (["campaign", "resnet99", "--fault", FAULT], ["unknown zoo model"]),
    "module-missing": (["campaign", "nosuchmodule:tiny", "--fault", FAULT], ["nosuchmodule"]),
    "factory-missing": (["campaign", "badtiny:nosuch", "--weights", "{weights}", "--fault",
                         FAULT], ["nosuch"]),
    "weights-missing": (["campaign", "badtiny:tiny", "--weights", "{root}/no.safetensors",
                         "--fault", FAULT], ["no.safetensors"]),
    "weights-garbage": (["campaign", "badtiny:tiny", "--weights", "{garbage}", "--fault",
                         FAULT], ["garbage.safetensors"]),
    "weights-shapes": (["campaign", "badtiny:tiny", "--weights",
                        "{root}/other-shapes.safetensors", "--fault", FAULT], ["shape"]),
    "weights-nan": (["campaign", "badtiny:tiny", "--weights", "{root}/nan.safetensors",
                     "--fault", FAULT], ["NaN"]),
    "weights-pickle-payload": (["campaign", "badtiny:tiny", "--weights", "{root}/payload.pt",
                                "--fault", FAULT], ["payload.pt"]),
    "input-shape": (["campaign", M, "--fault", FAULT, "--input-shape", "a,b"], ["input shape"]),
    "task": (["btv", "fit", M, "-o", "t.safetensors", "--task", "nonsense"], ["nonsense"]),
    # data
    "data-missing": (["campaign", M, "--fault", FAULT, "--data", "{root}/no.npz"], ["no.npz"]),
    "data-garbage": (["campaign", M, "--fault", FAULT, "--data", "{root}/garbage.npz"],
                     ["garbage.npz"]),
    "data-shape": (["campaign", M, "--fault", FAULT, "--data", "{root}/shape.npz"],
                   ["shape (4, 3, 32, 32)"]),
    "data-no-labels": (["campaign", M, "--fault", FAULT, "--data", "{root}/nolabels.npz"],
                       ["nolabels.npz"]),
    "data-labels-out-of-range": (["campaign", M, "--fault", FAULT, "--data",
                                  "{root}/labels.npz"], ["labels.npz"]),
    "data-empty-folder": (["campaign", M, "--fault", FAULT, "--data", "{root}/empty-folder"],
                          ["empty-folder"]),
    "test-images-zero": (["campaign", M, "--fault", FAULT, "--test-images", "0"],
                         ["--test-images"]),
    "test-images-negative": (["compare", M, "--fault", FAULT, "--test-images", "-5"],
                             ["--test-images must be positive"]),
    "test-images-beyond-memory": (["campaign", M, "--fault", FAULT, "--test-images",
                                   "1000000000", "--memory", "1GB"], ["--memory 1GB"]),
    "data-unknown-set": (["campaign", M, "--fault", FAULT, "--data", "mnist2"],
                         ["'mnist2'", "digits, mnist1d, mnist"]),
    "data-set-of-another-shape": (["campaign", M, "--fault", FAULT, "--data", "mnist1d"],
                                  ["'mnist1d' comes in inputs (40,), (1, 40)", "(1, 8, 8)"]),
    "data-set-normalised": (["campaign", M, "--fault", FAULT, "--data", "mnist",
                             "--normalise", "0,1"], ["--normalise", "'mnist'"]),
    # artefacts
    "btv-edited-metadata": (["btv", "apply", "{btv_edited}", "--model", *M.split()],
                            ["fails its digest check"]),
    "btv-edited-forced": (["btv", "evaluate", "{btv_edited}", "--model", *M.split(), "--fault",
                           FAULT, "--force"], ["fails its digest check"]),
    "btv-flipped-byte": (["btv", "apply", "{btv_flipped}", "--model", *M.split(), "--force"],
                         ["fails its digest check"]),
    "btv-truncated": (["btv", "apply", "{btv_truncated}", "--model", *M.split()],
                      ["not a readable safetensors"]),
    "btv-not-an-artefact": (["btv", "apply", "{weights}", "--model", *M.split()],
                            ["not a cimtest test artefact"]),
    "btv-missing": (["btv", "apply", "{root}/none.safetensors", "--model", *M.split()],
                    ["does not exist"]),
    "btv-other-model": (["btv", "apply", "{btv}", "--model", "badtiny:tiny", "--weights",
                         "{root}/nan-free.safetensors"], ["--force"]),
    "egis-edited-index": (["egis", "evaluate", "{egis_index}", "--model", *M.split()],
                          ["grid.json", "fails its digest check"]),
    "egis-edited-member": (["egis", "apply", "{egis_member}/A50-k2", "--model", *M.split(),
                            "--force"], ["fails its digest check"]),
    "egis-edited-detector": (["egis", "apply", "{egis_detector}/A50-k2", "--model",
                              *M.split(), "--force"], ["fails its digest check"]),
    "egis-swapped-member": (["egis", "evaluate", "{egis_swapped}", "--model", *M.split(),
                             "--k", "2"], ["not the test saved with test set"]),
    "egis-missing": (["egis", "evaluate", "{root}/no-set", "--model", *M.split()],
                     ["does not exist"]),
    "egis-edited-sid": (["egis", "fit", M, "-o", "t", "--fault", FAULT, "--sid",
                         "{sid_edited}"], ["fails its digest check"]),
    "report-missing": (["report", "{root}/no-run", "-o", "r.html"], ["does not exist"]),
    "report-edited": (["report", "{run_edited}", "-o", "r.html"], ["fails its digest check"]),
    "report-a-file": (["report", "{btv}", "-o", "r.html"], ["not a run folder"]),
    "report-suffix": (["report", "{run}", "-o", "r.txt"], [".html"]),
    # outputs
    "btv-fit-suffix": (["btv", "fit", M, "-o", "t.txt"], [".safetensors"]),
    "btv-fit-unwritable": (["btv", "fit", M, "-o", "/proc/t.safetensors"], ["not writable"]),
    "egis-fit-unwritable": (["egis", "fit", M, "-o", "/proc/egis-test"], ["not writable"]),
    "egis-fit-onto-a-file": (["egis", "fit", M, "-o", "taken"], ["is not a folder"]),
    "egis-fit-missing-parent": (["egis", "fit", M, "-o", "no/such/t"], ["does not exist"]),
    "campaign-output-a-folder": (["campaign", M, "--fault", FAULT, "-o", "folder.csv"],
                                 ["is a folder"]),
    # stores
    "status-missing": (["status", "{root}/none.db"], ["none.db"]),
    "status-not-a-store": (["status", "{root}/not-a-store.db"], ["not-a-store.db"]),
    "export-suffix": (["export", "{store}", "-o", "chips.txt"], ["--format"]),
    "export-missing": (["export", "{root}/none.db", "-o", "chips.csv"], ["none.db"]),
    "store-other-campaign": (["campaign", M, "--fault", "mult:eta=0.1", "--chips", "8",
                              "--store", "copy.db"], ["--new"]),
    "store-unwritable-folder": (["campaign", M, "--fault", FAULT, "--store", "/proc/s/x.db"],
                                ["cannot create the store folder '/proc/s'"]),
    "store-not-a-store": (["campaign", M, "--fault", FAULT, "--store", "{root}/not-a-store.db"],
                          ["not-a-store.db"]),
}
"""Case name → (arguments, substrings the error line must contain)."""

SETUP = {
    "egis-fit-onto-a-file": lambda here, kit: (here / "taken").write_text("x"),
    "campaign-output-a-folder": lambda here, kit: (here / "folder.csv").mkdir(),
    "store-other-campaign": lambda here, kit: [shutil.copy(kit["store"].with_name(name),
                                                           here / name.replace("store", "copy"))
                                               for name in ("store.db", "store.db.lock")],
    "btv-other-model": lambda here, kit: _retrained(kit),
}
"""Files a case needs in the working folder (or elsewhere) before it runs."""


def _retrained(kit: dict) -> None:
    """Weights of the same architecture but another fingerprint."""
    from safetensors.torch import load_file

    state = load_file(kit["weights"])
    state["1.weight"] = state["1.weight"] * 1.01
    save_file(state, kit["root"] / "nan-free.safetensors")


def _expand(args: list[str], kit: dict) -> list[str]:
    out: list[str] = []
    for arg in args:
        if arg == M:
            out += [str(a) for a in kit["model"]]
        else:
            out.append(arg.format(**{k: v for k, v in kit.items() if not isinstance(v, list)}))
    return out


def test_at_least_forty_cases_over_every_family():
    families = {"spec", "seed", "memory", "weights", "data", "btv", "egis", "report", "store"}
    assert len(CASES) >= 40
    assert all(any(name.startswith(f) or f in name for name in CASES) for f in families)


@pytest.mark.parametrize("name", CASES)
def test_refused_in_one_line_with_nothing_left_behind(name, kit, tmp_path, monkeypatch):
    args, expected = CASES[name]
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    if name in SETUP:
        SETUP[name](here, kit)
    before = sorted(os.listdir(here))
    result = runner.invoke(app, _expand(args, kit))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cimtest: error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert sorted(os.listdir(here)) == before  # no output, no temporary file, no store
    assert not kit["marker"].exists()  # no pickled payload ever ran


def test_the_message_is_one_line_in_a_real_process_too(kit, tmp_path):
    """The same refusal in a fresh `cimtest` process: exit 2, one line, no traceback."""
    done = subprocess.run([sys.executable, "-m", "cimtest", "campaign", *_expand([M], kit),
                           "--fault", FAULT, "--seed", "-1"], capture_output=True, text=True,
                          check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(kit["root"])})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "cimtest: error: --seed must be an integer from 0 to 2147483647; got -1"]
    assert os.listdir(tmp_path) == []


def test_the_unedited_artefacts_load(kit, tmp_path, monkeypatch):
    """The originals the cases edit are accepted, so each refusal is the edit's doing."""
    monkeypatch.chdir(tmp_path)
    for args in (["btv", "apply", kit["btv"], "--model", *kit["model"]],
                 ["egis", "apply", kit["egis"] / "A50-k2", "--model", *kit["model"]],
                 ["report", kit["run"], "-o", "r.html"]):
        result = runner.invoke(app, ["-q", *map(str, args)])
        assert result.exit_code in (0, 1), result.output  # 1: a verdict "fail"/"uncertain"
        assert result.stderr == ""

