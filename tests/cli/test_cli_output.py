"""Output as scripts read it (issue 33, item 8): tables printed to a pipe keep every column,
and -o says what it wrote and when it replaced a file or folder that was there."""

import os
import subprocess
import sys

import pytest
from conftest import factory_module
from rich.table import Table
from typer.testing import CliRunner

from cimtest.cli.common import PIPE_WIDTH, STATE, announce_output, stdout
from cimtest.cli.main import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("columns", [None, "40"])
def test_a_table_wider_than_80_columns_is_whole_in_a_pipe(capsys, monkeypatch, columns):
    """30 columns of 9-12 characters (about 400 wide): rich cuts them to 80 unless stdout
    is wide; COLUMNS, often 80 in CI, does not narrow a pipe."""
    if columns is not None:
        monkeypatch.setenv("COLUMNS", columns)
    table = Table(*(f"column-{i}" for i in range(30)))
    table.add_row(*(f"value-{i}" for i in range(30)))
    stdout.print(table)
    out = capsys.readouterr().out
    assert "…" not in out
    assert all(f"column-{i}" in out and f"value-{i}" in out for i in range(30))
    assert max(map(len, out.splitlines())) < PIPE_WIDTH  # natural width, not padded to it


def test_zoo_list_through_a_pipe_keeps_every_column():
    """The command as a script runs it: stdout a pipe, COLUMNS=80."""
    done = subprocess.run([sys.executable, "-m", "cimtest", "zoo", "list"], capture_output=True,
                          text=True, check=True, env={**os.environ, "COLUMNS": "80"})
    header = done.stdout.splitlines()[1]  # under the table's top border
    assert "…" not in done.stdout
    for name in ("name", "task", "params", "input shape", "data", "test size", "trained"):
        assert name in header, header


def test_announce_output_says_what_it_wrote_and_what_it_replaced(tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.setitem(STATE, "quiet", False)  # as a command without -q leaves it
    path = tmp_path / "rows.csv"
    with announce_output(path, "3 rows"):
        path.write_text("a\n")
    assert capsys.readouterr().err.strip() == f"wrote 3 rows to {path}"
    with announce_output(path, "3 rows"):
        path.write_text("b\n")
    assert capsys.readouterr().err.strip() == (f"wrote 3 rows to {path} (replacing the file "
                                                "that was there)")
    folder = tmp_path / "run"
    folder.mkdir()
    with announce_output(folder, "the RUN folder"):
        pass
    assert "(replacing the folder that was there)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("output")
    with factory_module(root, "outputtiny"):
        yield ["outputtiny:tiny", "--weights", root / "tiny.safetensors"]


def test_campaign_o_says_where_it_wrote_and_that_it_replaced(tiny, tmp_path):
    out = tmp_path / "chips.csv"
    args = ("campaign", *tiny, "--fault", "mult:eta=0.2", "--chips", 6, "-o", out, "--json")
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert f"wrote 6 rows to {out}\n" in first.stderr
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert f"wrote 6 rows to {out} (replacing the file that was there)" in again.stderr
    quiet = run(*args, "-q")  # -q: results, warnings and errors only
    assert quiet.exit_code == 0 and "wrote" not in quiet.stderr
