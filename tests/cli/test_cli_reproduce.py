"""`cimtest reproduce`: marked blocks are rewritten from the JSON of real cimtest commands."""

import pytest
from typer.testing import CliRunner

from cimtest.cli.main import app
from cimtest.cli.reproduce_cmd import (
    EXPERIMENTS,
    Experiment,
    replace_block,
    run_experiment,
    write_blocks,
)
from cimtest.exceptions import ArtifactError

DOC = "# t\n\nprose\n<!-- reproduce:a -->\nold table\n<!-- /reproduce:a -->\nafter\n"


def test_replace_block_keeps_the_prose():
    new = replace_block(DOC, "a", "| x |\n|---|\n")
    assert new == "# t\n\nprose\n<!-- reproduce:a -->\n| x |\n|---|\n<!-- /reproduce:a -->\nafter\n"
    assert replace_block(new, "a", "| x |\n|---|") == new  # idempotent
    with pytest.raises(ArtifactError, match="reproduce:b"):
        replace_block(DOC, "b", "x")


def test_an_experiment_runs_real_commands_and_rewrites_its_block(tmp_path, monkeypatch):
    monkeypatch.setenv("CIMTEST_HOME", str(tmp_path / "home"))
    experiment = Experiment(
        "doc.md",
        (("zoo", lambda r, w: ["zoo", "list"]),  # the second step's argv uses the first's JSON
         ("again", lambda r, w: ["zoo", "list"] if r["zoo"][0]["name"] else ["bogus"])),
        lambda r: {"a": f"{len(r['zoo'])} models, {sum(e['trained'] for e in r['again'])} trained"},
    )
    results = run_experiment(experiment, tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    write_blocks(doc, experiment.render(results))
    assert "36 models, 0 trained" in doc.read_text()
    assert doc.read_text().endswith("<!-- /reproduce:a -->\nafter\n")


def test_every_documented_block_exists():
    from pathlib import Path

    docs = Path(__file__).parents[2] / "docs"
    for name, experiment in EXPERIMENTS.items():
        text = (docs / experiment.doc).read_text()
        for block in {"btv": ["btv-table"], "egis": ["egis-table"],
                      "comparison": ["r20-typical", "r20-bitflip", "vgg-typical",
                                     "vgg-bitflip", "levels"]}[name]:
            assert f"<!-- reproduce:{block} -->" in text and f"<!-- /reproduce:{block} -->" in text


def test_unknown_target_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["reproduce", "everything", "--docs", str(tmp_path)])
    assert result.exit_code == 2 and "btv, egis, comparison or all" in result.stderr
