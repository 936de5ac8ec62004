"""`cimtest reproduce`: marked blocks are rewritten from the JSON of real cimtest commands."""

import pytest
from typer.testing import CliRunner

from cimtest.cli.main import app
from cimtest.cli.reproduce_cmd import replace_block, run_experiment, write_blocks
from cimtest.exceptions import ArtifactError
from cimtest.report.experiments import EXPERIMENTS, Experiment

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
    results, commands = run_experiment(experiment, tmp_path)
    assert commands == ["cimtest zoo list --json", "cimtest zoo list --json"]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    write_blocks(doc, experiment.render(results))
    assert "40 models, 5 trained" in doc.read_text()  # the shipped models
    assert doc.read_text().endswith("<!-- /reproduce:a -->\nafter\n")


def test_every_documented_block_exists():
    from pathlib import Path

    docs = Path(__file__).parents[2] / "docs"
    for name, experiment in EXPERIMENTS.items():
        text = (docs / experiment.doc).read_text()
        assert experiment.blocks
        for block in (*experiment.blocks, f"{name}-commands"):
            assert f"<!-- reproduce:{block} -->" in text and f"<!-- /reproduce:{block} -->" in text


def test_unknown_target_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["reproduce", "everything", "--docs", str(tmp_path)])
    assert result.exit_code == 2 and ", ".join(EXPERIMENTS) + " or all" in result.stderr


def test_a_kept_workdir_resumes_without_rerunning(tmp_path, monkeypatch):
    """Steps saved with the same command are read back; a changed command runs again."""
    monkeypatch.setenv("CIMTEST_HOME", str(tmp_path / "home"))
    calls = []

    def step(r, w):
        calls.append(1)
        return ["zoo", "list"]

    experiment = Experiment("doc.md", (("zoo", step),), lambda r: {})
    first, _ = run_experiment(experiment, tmp_path / "work")
    assert (tmp_path / "work" / "steps" / "zoo.json").is_file()
    record = tmp_path / "work" / "steps" / "zoo.json"
    record.write_text(record.read_text().replace('"trained": false', '"trained": "cached"'))
    again, _ = run_experiment(experiment, tmp_path / "work")
    assert again["zoo"][0]["trained"] == "cached" and first["zoo"][0]["trained"] is False
    other = Experiment("doc.md", (("zoo", lambda r, w: ["zoo", "list", "--json"]),),
                       lambda r: {})
    assert run_experiment(other, tmp_path / "work")[0]["zoo"][0]["trained"] is False


def test_a_document_without_its_blocks_is_refused_before_any_work(tmp_path):
    name = next(iter(EXPERIMENTS))
    (tmp_path / EXPERIMENTS[name].doc).write_text("no markers\n")
    result = CliRunner().invoke(app, ["reproduce", name, "--docs", str(tmp_path),
                                      "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 2 and "block for experiment" in result.stderr
    assert not (tmp_path / "work").exists()
