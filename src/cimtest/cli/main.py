"""The `cimtest` command: a thin Typer front over the public API."""

from __future__ import annotations

import typer

from cimtest import __version__
from cimtest.cli import (
    btv_cmd,
    campaign_cmd,
    compare_cmd,
    demo_cmd,
    egis_cmd,
    help_cmd,
    info_cmd,
    monitor_cmd,
    options,
    report_cmd,
    reproduce_cmd,
    store_cmd,
    tester_cmd,
    zoo_cmd,
)
from cimtest.cli.common import remember_global_options

app = typer.Typer(
    name="cimtest",
    help="Dataset-agnostic functional tests for DNNs on memristive compute-in-memory chips.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(zoo_cmd.app, name="zoo")
app.add_typer(btv_cmd.app, name="btv")
app.add_typer(egis_cmd.app, name="egis")
app.command("info")(info_cmd.info)
app.command("campaign")(campaign_cmd.campaign)
app.command("calibrate")(campaign_cmd.calibrate)
app.command("compare")(compare_cmd.compare_cmd)
app.command("demo")(demo_cmd.demo)
app.command("report")(report_cmd.report)
app.command("reproduce")(reproduce_cmd.reproduce)
app.command("export")(tester_cmd.export)
app.command("decide")(tester_cmd.decide)
app.command("apply")(tester_cmd.apply)
app.command("monitor")(monitor_cmd.monitor)
app.command("status")(store_cmd.status)
app.command("help")(help_cmd.help_topic)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cimtest {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    verbose: int = options.VERBOSE,
    quiet: bool = options.QUIET,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    """Global options; -q and -v may also follow the command name."""
    remember_global_options(ctx, debug=debug, quiet=quiet, verbose=verbose)
