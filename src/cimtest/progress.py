"""The one progress protocol of cimtest: ``progress(done, total, stage=None)``.

Every long-running function (a campaign, a calibration, a method's fit, a comparison, a zoo
training) takes an optional callable of this shape and calls it with the units of work done
so far, the total, and, for work in several stages, the stage's name (with any live figure,
e.g. ``"compaction: T 0.512 best 91.20"``). `cimtest.cli.common.progress_bar` yields one.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "report", "staged"]


class Progress(Protocol):
    """``progress(done, total, stage=None)``: `done` of `total` units, in stage `stage`."""

    def __call__(self, done: int, total: int, stage: str | None = None) -> None: ...


def report(progress: Progress | None, done: int, total: int, stage: str | None = None) -> None:
    """Call `progress` if there is one (the shared ``None`` check of every caller)."""
    if progress is not None:
        progress(done, total, stage)


def staged(progress: Progress | None, stage: str) -> Progress | None:
    """`progress` with every call labelled `stage` (for the engine's unlabelled calls)."""
    if progress is None:
        return None
    return lambda done, total, _=None: progress(done, total, stage)
