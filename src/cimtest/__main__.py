"""``python -m cimtest``: the same command line as ``cimtest``."""

from cimtest.cli.main import app

app(prog_name="cimtest")
