"""Where cimtest keeps what it makes once and reuses: trained zoo models, generated data."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Return cimtest's cache directory: ``$CIMTEST_HOME`` if set, else the user cache dir.

    Zoo files go to its ``zoo/`` subdirectory, generated data to ``data/``. The directory is
    not created here.
    """
    home = os.environ.get("CIMTEST_HOME")
    return Path(home) if home else Path(platformdirs.user_cache_dir("cimtest"))
