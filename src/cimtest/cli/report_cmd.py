"""`cimtest report RUN -o report.html`: one self-contained HTML file from a comparison run."""

from __future__ import annotations

import typer

from cimtest.cli.common import announce_output, check_output, emit_json, handle_errors, stdout

__all__ = ["report"]


@handle_errors
def report(
    run: str = typer.Argument(..., help="RUN directory written by `cimtest compare -o` or "
                              "`cimtest demo`."),
    output: str = typer.Option(..., "-o", "--output", help="HTML file to write."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Tables, ROC curves, flag rate against accuracy drop, accuracy histograms, the EGIS
    entropy and annealing curves and images, and the Bayesian vector, in one HTML file."""
    check_output(output, (".html", ".htm"))
    from cimtest.report.html import SECTIONS, write_report
    from cimtest.report.run import load_run

    doc, tensors = load_run(run)
    with announce_output(output, "the HTML report"):
        path = write_report(doc, tensors, output)
    if json:
        emit_json({"report": str(path), "run": run, "sections": list(SECTIONS)})
        return
    stdout.print(f"report {path}: {path.stat().st_size / 1e3:.0f} kB, {len(SECTIONS)} "
                 "sections")
