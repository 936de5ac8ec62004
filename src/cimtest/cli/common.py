"""Shared pieces of the CLI: error handling, model and data options, output, progress."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer
from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cimtest._validation import MAX_SEED, check_seed, parse_memory
from cimtest.cli import options
from cimtest.exceptions import CimtestError, ConfigError

if TYPE_CHECKING:
    from cimtest.engine import Population

__all__ = [
    "PIPE_WIDTH",
    "STATE",
    "afterword",
    "announce_output",
    "check_memory",
    "check_output",
    "configure_output",
    "emit_json",
    "handle_errors",
    "note",
    "parse_array_size",
    "parse_floats",
    "parse_input_range",
    "parse_input_shape",
    "parse_ks",
    "parse_normalise",
    "parse_shape",
    "progress_bar",
    "remember_global_options",
    "stderr",
    "stdout",
]

STATE = {"debug": False, "quiet": False}
"""The running command's output settings (set by `configure_output`)."""

_AFTERWORDS: list[str] = []
"""Remarks on the running command's result, printed once it succeeds (`afterword`)."""

PIPE_WIDTH = 1000
"""Columns of stdout when it is not a terminal (a pipe, a file): wider than any table, so that
a script reading the output gets every column whole (rich would cut tables to 80)."""


class _Stdout(Console):
    """The results console: a terminal's own width, else `PIPE_WIDTH` (whatever COLUMNS says,
    since a table cut to fit a pipe loses columns a reader cannot get back)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, size.height)


stderr = Console(stderr=True)
stdout = _Stdout(highlight=False, soft_wrap=True)

_GLOBAL_OPTIONS = "cimtest.global_options"
"""Key of the options given before the command name in the click context's ``meta``."""


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it for each run), as
    logging's own last-resort handler does."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)  # no stream of its own

    @property
    def stream(self) -> TextIO:
        return sys.stderr


_LOG_HANDLER = _StderrHandler()
_LOG_HANDLER.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def remember_global_options(
    context: typer.Context, *, debug: bool, quiet: bool, verbose: int
) -> None:
    """Keep the options given before the command name (``cimtest -q campaign ...``) for the
    command, which combines them with its own (`configure_output`)."""
    context.meta[_GLOBAL_OPTIONS] = {"debug": debug, "quiet": quiet, "verbose": verbose}


def configure_output(
    context: typer.Context | None = None, *, quiet: bool = False, verbose: int = 0
) -> None:
    """Set the running command's output: progress and notes unless quiet (either before or
    after the command name), logging at WARNING, INFO (-v) or DEBUG (-vv, counted over both
    places) on stderr. cli/ is the only place that configures logging."""
    given = {} if context is None else context.meta.get(_GLOBAL_OPTIONS, {})
    STATE["debug"] = given.get("debug", False)
    STATE["quiet"] = quiet or given.get("quiet", False)
    _AFTERWORDS.clear()
    count = verbose + given.get("verbose", 0)
    root = logging.getLogger()
    root.setLevel(logging.WARNING if count == 0 else logging.INFO if count == 1 else logging.DEBUG)
    if _LOG_HANDLER not in root.handlers:
        root.addHandler(_LOG_HANDLER)


_SHARED_OPTIONS = (
    inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
    inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=options.QUIET,
                      annotation=bool),
    inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=options.VERBOSE,
                      annotation=int),
)
"""-q/--quiet and -v/--verbose, which every command takes after its name, and the context
that holds the options given before it."""


def handle_errors(func: Callable) -> Callable:
    """Make `func` a command: it takes the shared -q/--quiet and -v/--verbose options (added
    to its signature for Typer, handled here), its seeds and --memory are checked before it
    runs (`check_shared_arguments`), a `CimtestError` becomes one line on stderr and exit
    code 2 (``cimtest --debug``: the traceback), and once it has done its work its
    `afterword` remarks follow on stderr."""

    @functools.wraps(func)
    def wrapper(*args, ctx: typer.Context | None = None, quiet: bool = False, verbose: int = 0,
                **kwargs):
        configure_output(ctx, quiet=quiet, verbose=verbose)
        try:
            check_shared_arguments(kwargs)
            result = func(*args, **kwargs)
        except CimtestError as exc:
            if STATE["debug"]:
                traceback.print_exc()
            typer.echo(f"cimtest: error: {exc}", err=True)
            raise typer.Exit(2) from None
        except typer.Exit:  # a verdict's exit code: the command did its work
            _say_afterwords()
            raise
        _say_afterwords()
        return result

    signature = inspect.signature(func, eval_str=True)
    wrapper.__signature__ = signature.replace(
        parameters=[*signature.parameters.values(), *_SHARED_OPTIONS])
    wrapper.__annotations__ = {**func.__annotations__,
                               **{p.name: p.annotation for p in _SHARED_OPTIONS}}
    return wrapper


def check_shared_arguments(arguments: dict[str, object]) -> None:
    """The checks every command shares, in one place, before the command starts: every seed
    (an option named ``seed`` or ``*_seed``) is an integer from 0 to `MAX_SEED`, the same
    rule for every command, and ``--memory`` is a well-formed positive budget."""
    for name, value in arguments.items():
        if (name == "seed" or name.endswith("_seed")) and value is not None:
            check_seed(value, f"--{name.replace('_', '-')}", MAX_SEED)
    if arguments.get("memory") is not None:
        parse_memory(arguments["memory"])


def check_memory(population: Population) -> None:
    """Refuse, before any chip is evaluated, a --memory below the weights of one micro-batch
    of `population`'s chips (`cimtest.engine.memory.check_budget`)."""
    from cimtest.engine.memory import check_budget

    check_budget(population.memory, population.mapped.reference.numel())


def note(text: str) -> None:
    """Print a remark that is not a result on stderr, unless quiet."""
    if not STATE["quiet"]:
        stderr.print(text, soft_wrap=True, markup=False)


def _say_afterwords() -> None:
    for text in _AFTERWORDS:
        note(text)
    _AFTERWORDS.clear()


def afterword(text: str) -> None:
    """A remark on the result (e.g. which data it was scored on), printed on stderr like a
    `note` once the command succeeds: a refusal stays one line."""
    _AFTERWORDS.append(text)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3,32,32"`` → (3, 32, 32): one or more positive integers."""
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ConfigError(f"input shape must look like 3,32,32; got {text!r}") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"input shape must be positive ints; got {text!r}")
    return shape


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """--input-shape: ``"20"`` (F), ``"1,64"`` (C, L) or ``"3,32,32"`` (C, H, W)."""
    shape = parse_shape(text)
    if shape is not None and len(shape) > 3:
        raise ConfigError(f"--input-shape takes 1 to 3 integers, F, C,L or C,H,W; got {text!r}")
    return shape


def parse_array_size(text: str | None) -> tuple[int, int] | None:
    """``"128x128"`` → (128, 128); None keeps one array per layer."""
    if text is None:
        return None
    try:
        shape = parse_shape(text)
    except ConfigError:
        shape = None
    if shape is None or len(shape) != 2:
        raise ConfigError(f"--array-size must be ROWSxCOLS, two positive integers such as "
                          f"128x128; got {text!r}")
    return shape  # type: ignore[return-value]


def parse_floats(text: str, what: str) -> list[float]:
    """``"1,2,5"`` → [1.0, 2.0, 5.0]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list of numbers; got {text!r}") from None


def _finite_floats(text: str) -> list[float]:
    """``"1,-2.5"`` → [1.0, -2.5]; [] unless every comma-separated item is a finite number."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        return []
    return values if all(math.isfinite(v) for v in values) else []


def parse_input_range(text: str | None) -> tuple[float, float] | None:
    """``"-1,1"`` → (-1.0, 1.0): --input-range LO,HI, two finite numbers with LO < HI."""
    if text is None:
        return None
    values = _finite_floats(text)
    if len(values) != 2 or values[0] >= values[1]:
        raise ConfigError(f"--input-range must be two numbers LO,HI with LO < HI; got {text!r}")
    return values[0], values[1]


def parse_normalise(text: str | None) -> tuple[list[float], list[float]] | None:
    """``"0.5,0.25"`` → ([0.5], [0.25]); ``"m1,m2,m3,s1,s2,s3"`` → ([m1, m2, m3], [s1, s2, s3]):
    --normalise, an even count of finite numbers, means first, positive stds."""
    if text is None:
        return None
    values = _finite_floats(text)
    half = len(values) // 2
    if not values or len(values) % 2 or min(values[half:]) <= 0:
        raise ConfigError(f"--normalise must be MEAN,STD (one pair for all channels, or all "
                          f"means then all stds) with positive stds; got {text!r}")
    return values[:half], values[half:]


@contextmanager
def announce_output(path: str | Path, what: str) -> Iterator[None]:
    """Around the writing of an output the user named (-o, --plot, --stdf): once it is
    written, one note on stderr saying what was written where, and that it replaced the file
    or folder that was there (a rerun with the same -o replaces without asking)."""
    path = Path(path)
    before = "folder" if path.is_dir() else "file" if path.exists() else None
    yield
    replaced = f" (replacing the {before} that was there)" if before else ""
    note(f"wrote {what} to {path}{replaced}")


def emit_json(document: object) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=float) + "\n")
    sys.stdout.flush()


def check_output(path: str | Path, suffixes: tuple[str, ...] = ()) -> Path:
    """Fail before any work unless `path` can be written: a file with one of `suffixes`, or,
    with no suffixes, an output folder. Refused: another suffix, a missing parent, a folder
    where a file goes or a file where a folder goes, and a parent in which nothing can be
    created (tried for real, since root passes `os.access` even on a read-only mount)."""
    path = Path(path)
    if suffixes and path.suffix not in suffixes:
        raise ConfigError(f"output must end in {' or '.join(suffixes)}; got '{path}'")
    parent = path.parent
    if not parent.exists():
        raise ConfigError(f"output folder '{parent}' does not exist")
    if not parent.is_dir():
        raise ConfigError(f"'{parent}' is a file, not a folder to write '{path.name}' in")
    if suffixes and path.is_dir():
        raise ConfigError(f"output '{path}' is a folder; give a file name ending in "
                          f"{' or '.join(suffixes)}")
    if not suffixes and path.exists() and not path.is_dir():
        raise ConfigError(f"output '{path}' exists and is not a folder; give a folder (an old "
                          "one is replaced whole)")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise ConfigError(f"output folder '{parent}' is not writable (creating a file there "
                          f"failed: {exc.strerror or exc})") from None
    os.close(handle)
    os.unlink(probe)
    return path


PLAIN_PROGRESS_EVERY_S = 10.0
"""Seconds between two progress lines when stderr is not a terminal (a log file, a pipe, CI)."""


@contextmanager
def progress_bar(description: str, unit: str = "chips") -> Iterator[Callable[[int, int], None]]:
    """Progress on stderr; yields an ``update(done, total, stage=None)`` callback.

    On a terminal, a rich progress bar (rate and ETA). Elsewhere (a log file, a pipe, CI),
    whole lines such as ``calibrating ...: 448/896 chips, 18 chips/s, ETA 0:00:25``: the
    first update at once, then at most one line every `PLAIN_PROGRESS_EVERY_S` seconds, and
    the last state at the end, so that a log shows the work as it goes, uncut.
    """
    if STATE["quiet"]:
        yield lambda done, total, stage=None: None
        return
    if not stderr.is_terminal:
        lines = _ProgressLines(description, unit)
        try:
            yield lines.update
        finally:
            lines.close()
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=stderr, transient=False) as bar:
        task = bar.add_task(description, total=None, rate="")

        def update(done: int, total: int, stage: str | None = None) -> None:
            elapsed = bar.tasks[0].elapsed or 1e-9
            label = description if stage is None else f"{description}: {stage}"
            bar.update(task, completed=done, total=total, description=label,
                       rate=f"{_rate(done / elapsed)} {unit}/s")

        yield update


def _rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


class _ProgressLines:
    """`progress_bar` for a stderr that is not a terminal: one whole line per report."""

    def __init__(self, description: str, unit: str, every: float = PLAIN_PROGRESS_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.description, self.unit, self.every, self.clock = description, unit, every, clock
        self.start = self.run_start = clock()
        self.last_line: float | None = None
        self.state: tuple[int, int, str | None] | None = None
        self.shown: tuple[int, int, str | None] | None = None

    def update(self, done: int, total: int, stage: str | None = None) -> None:
        now = self.clock()
        if self.state is not None and done < self.state[0]:
            self.run_start = now  # a new pass (a calibration step): its own rate and ETA
        self.state = (done, total, stage)
        if self.last_line is None or now - self.last_line >= self.every:
            self._write(now)

    def close(self) -> None:
        if self.state is not None and self.state != self.shown:
            self._write(self.clock())

    def _write(self, now: float) -> None:
        assert self.state is not None
        done, total, stage = self.state
        label = self.description if stage is None else f"{self.description}: {stage}"
        parts = [f"{done:,}/{total:,} {self.unit}" if total else f"{done:,} {self.unit}"]
        elapsed = now - self.run_start
        rate = done / elapsed if elapsed > 0 else 0.0
        if rate > 0:
            parts.append(f"{_rate(rate)} {self.unit}/s")
        if total and done >= total:
            parts.append(f"elapsed {_clock(now - self.start)}")
        elif total and rate > 0:
            parts.append(f"ETA {_clock((total - done) / rate)}")
        print(f"{label}: {', '.join(parts)}", file=sys.stderr, flush=True)
        self.last_line, self.shown = now, self.state


def _clock(seconds: float) -> str:
    """``H:MM:SS`` of `seconds`, as rich shows elapsed and remaining time."""
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def parse_ks(text: str) -> list[int]:
    """``"2,4,8"`` → [2, 4, 8]: the K values, each at least 1."""
    try:
        ks = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"--k must be a comma-separated list of integers; got {text!r}") \
            from None
    if not ks or ks[0] < 1:
        raise ConfigError(f"--k needs integers of at least 1; got {text!r}")
    return ks
