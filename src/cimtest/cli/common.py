"""Shared pieces of the CLI: error handling, model and data options, output, progress."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cimtest.exceptions import CimtestError, ConfigError

__all__ = [
    "STATE",
    "check_output",
    "emit_json",
    "handle_errors",
    "parse_array_size",
    "parse_floats",
    "parse_shape",
    "progress_bar",
    "stderr",
    "stdout",
]

STATE = {"debug": False, "quiet": False}
stderr = Console(stderr=True)
stdout = Console(highlight=False, soft_wrap=True)


def handle_errors(func: Callable) -> Callable:
    """Turn a `CimtestError` into one line on stderr and exit code 2 (``--debug``: traceback)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CimtestError as exc:
            if STATE["debug"]:
                traceback.print_exc()
            typer.echo(f"cimtest: error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3,32,32"`` → (3, 32, 32)."""
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ConfigError(f"input shape must look like 3,32,32; got {text!r}") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"input shape must be positive ints; got {text!r}")
    return shape


def parse_array_size(text: str | None) -> tuple[int, int] | None:
    """``"128x128"`` → (128, 128); None keeps one array per layer."""
    if text is None:
        return None
    shape = parse_shape(text)
    if shape is None or len(shape) != 2:
        raise ConfigError(f"array size must look like 128x128; got {text!r}")
    return shape  # type: ignore[return-value]


def parse_floats(text: str, what: str) -> list[float]:
    """``"1,2,5"`` → [1.0, 2.0, 5.0]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list of numbers; got {text!r}") from None


def emit_json(document: object) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=float) + "\n")
    sys.stdout.flush()


def check_output(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    """Fail before any work if `path` has another suffix or its folder is missing or read-only."""
    path = Path(path)
    if path.suffix not in suffixes:
        raise ConfigError(f"output must end in {' or '.join(suffixes)}; got '{path}'")
    if not path.parent.is_dir():
        raise ConfigError(f"output folder '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"output folder '{path.parent}' is not writable")
    return path


@contextmanager
def progress_bar(description: str, unit: str = "chips") -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (rate and ETA); yields an ``update(done, total)`` callback."""
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=stderr, disable=STATE["quiet"], transient=False) as bar:
        task = bar.add_task(description, total=None, rate="")

        def update(done: int, total: int, stage: str | None = None) -> None:
            elapsed = bar.tasks[0].elapsed or 1e-9
            label = description if stage is None else f"{description}: {stage}"
            rate = done / elapsed
            shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"
            bar.update(task, completed=done, total=total, description=label,
                       rate=f"{shown} {unit}/s")

        yield update
