"""MkDocs hooks: reference text generated from the code at build time, never typed twice.

A page holds a marker comment where generated text goes:

- ``<!-- generated: cli -->``: every ``cimtest`` command with its usage, its help and its
  options, read from the Typer app (what ``--help`` prints);
- ``<!-- generated: help faults -->``: the text of ``cimtest help faults`` (the fault spec
  language's grammar, kinds, keys, presets, modifiers and examples).

Neither imports torch. Wired in ``mkdocs.yml`` (``hooks:``); this file is excluded from the
site (``exclude_docs``).
"""

from __future__ import annotations

from collections.abc import Iterator

COMMON = {"-q, --quiet", "-v, --verbose"}
"""Options every command takes, documented once on the page instead of in every table."""


def _commands(command, path: list[str], parent=None) -> Iterator[tuple[list[str], object, object]]:
    """Each command of the app, depth first in the app's order, with its click context."""
    import typer

    ctx = typer.Context(command, info_name=path[-1], parent=parent)
    yield path, command, ctx
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            yield from _commands(command.get_command(ctx, name), [*path, name], ctx)


def _cell(text: str) -> str:
    """Text for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def cli_reference() -> str:
    """Markdown for every command of ``cimtest``: usage, help text and options."""
    import typer.main

    from cimtest.cli.main import app

    lines: list[str] = []
    for path, command, ctx in _commands(typer.main.get_command(app), ["cimtest"]):
        if getattr(command, "hidden", False):
            continue
        name = " ".join(path)
        usage = " ".join([name, *command.collect_usage_pieces(ctx)])
        lines += [f"### `{name}`", "", "```", usage, "```", ""]
        if command.help:
            lines += [command.help.strip().replace("\b\n", ""), ""]
        rows = []
        for param in command.params:
            record = None if param.hidden else param.get_help_record(ctx)
            if record is None or record[0] in COMMON:
                continue
            opts, text = record
            kind = "argument" if param.param_type_name == "argument" else ""
            rows.append(f"| `{_cell(opts)}` | {_cell(text) or kind} |")
        if rows:
            lines += ["| argument or option | meaning |", "|---|---|", *rows, ""]
    return "\n".join(lines)


def faults_reference() -> str:
    """``cimtest help faults`` as a text block."""
    from cimtest.cli.help_cmd import faults_help

    return "```text\n" + faults_help() + "\n```"


GENERATED = {"<!-- generated: cli -->": cli_reference,
             "<!-- generated: help faults -->": faults_reference}


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace each marker of `GENERATED` on a page by its generated text."""
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
