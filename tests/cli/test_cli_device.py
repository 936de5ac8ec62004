"""--device on every command that computes: a bad device is refused in one line, exit 2,
before any work; ``--device cpu`` and ``auto`` (no CUDA) give the default's numbers."""

from __future__ import annotations

import json

import pytest
import torch
from clitools import error_line
from conftest import factory_module
from typer.testing import CliRunner

from cimtest.cli.main import app

runner = CliRunner()

COMMANDS = [
    ["campaign", "m", "--fault", "mult:eta=0.1"],
    ["calibrate", "m", "--fault", "mult"],
    ["compare", "m", "--fault", "mult:eta=0.1"],
    ["btv", "evaluate", "t.safetensors", "--fault", "mult:eta=0.1"],
    ["egis", "fit", "m", "--fault", "mult:eta=0.1", "-o", "out"],
    ["egis", "evaluate", "tests"],
    ["monitor", "t", "--fault", "drift", "--at", "1h"],
    ["btv", "fit", "m", "-o", "t.safetensors"],
    ["btv", "apply", "t.safetensors"],
    ["egis", "apply", "tests"],
    ["export", "t.safetensors", "-o", "out"],
    ["apply", "t.safetensors"],
]


def _refused(args: list[str], tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    line = error_line(runner.invoke(app, args))
    assert list(tmp_path.iterdir()) == []
    return line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_unknown_device_is_refused(command, tmp_path, monkeypatch) -> None:
    line = _refused([*command, "--device", "tpu"], tmp_path, monkeypatch)
    assert "cpu, cuda, cuda:N or auto" in line and "'tpu'" in line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_cuda_where_absent_is_refused(command, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _refused([*command, "--device", "cuda"], tmp_path, monkeypatch)
    assert "CUDA is not available" in line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_cuda_index_out_of_range_is_refused(command, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    line = _refused([*command, "--device", "cuda:7"], tmp_path, monkeypatch)
    assert "no such CUDA device" in line and "cuda:0 to cuda:0" in line


def test_campaign_on_explicit_cpu_and_auto_equals_the_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with factory_module(tmp_path, "devicetiny"):
        base = ["campaign", "devicetiny:tiny", "--fault", "mult:eta=0.2", "--chips", "12",
                "--data", "digits", "--json", "-q"]
        documents = []
        for extra in ([], ["--device", "cpu"], ["--device", "auto"]):
            result = runner.invoke(app, [*base, *extra])
            assert result.exit_code == 0, result.output
            document = json.loads(result.stdout)
            for timing in ("seconds", "chips_per_s"):
                document.pop(timing, None)
            documents.append(document)
    assert documents[0] == documents[1] == documents[2]


def test_btv_fit_and_apply_on_explicit_cpu_equal_the_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    with factory_module(tmp_path, "devicebtv"):
        model = ["devicebtv:tiny", "--weights", str(tmp_path / "tiny.safetensors")]
        fits, verdicts = [], []
        for i, extra in enumerate(([], ["--device", "cpu"], ["--device", "auto"])):
            out = f"t{i}.safetensors"
            result = runner.invoke(app, ["btv", "fit", *model, "-o", out, "--steps", "5",
                                         "--json", *extra])
            assert result.exit_code == 0, result.output
            document = json.loads(result.stdout)
            for varying in ("seconds", "output"):
                document.pop(varying)
            fits.append(document)
            result = runner.invoke(app, ["btv", "apply", out, "--model", *model, "--json",
                                         *extra])
            assert result.exit_code in (0, 1), result.output
            verdicts.append(json.loads(result.stdout))
    assert fits[0] == fits[1] == fits[2]
    assert verdicts[0] == verdicts[1] == verdicts[2]
