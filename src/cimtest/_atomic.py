"""Write files and folders atomically: build beside the target, rename onto it on success.

A crash, an error or a full disk leaves the old target (or nothing) in place, never half
of a new one; a file's data is flushed to disk before it is renamed into place.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_directory", "atomic_file", "partial_files"]


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; outputs are ordinary files
    try:
        yield Path(tmp)
        _fsync(tmp)  # the data on disk before the name points at it
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def partial_files(path: str | Path) -> list[Path]:
    """The temporary files that `atomic_file(path)` blocks killed mid-write left beside `path`."""
    path = Path(path)
    # mkstemp's names: the prefix and suffix `atomic_file` gives, around 8 random characters
    name = re.compile(re.escape(f".{path.name}.") + r"\w{8}" + re.escape(path.suffix))
    return sorted(p for p in path.parent.iterdir() if name.fullmatch(p.name))


def _fsync(path: str | Path) -> None:
    """Flush a file's (or a folder's entries') writes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` if the block succeeds.

    An existing `path` is moved aside first and deleted only once the new folder is in place.
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
