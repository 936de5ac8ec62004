"""Memory budgets: parse ``2GB``-style sizes and turn a budget into a chunk of chips."""

from __future__ import annotations

import re

from cimtest.exceptions import ConfigError

__all__ = ["chunk_size", "parse_memory"]

_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_memory(value: str | int) -> int:
    """Bytes of a budget given as an int or a string such as ``2GB``, ``512MiB``."""
    if isinstance(value, int):
        nbytes = value
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMG]?I?B?)\s*", value.upper())
        if not match or match.group(2) not in _UNITS:
            raise ConfigError(f"memory budget must look like 2GB or 512MiB; got {value!r}")
        nbytes = int(float(match.group(1)) * _UNITS[match.group(2)])
    if nbytes <= 0:
        raise ConfigError(f"memory budget must be positive; got {value!r}")
    return nbytes


def chunk_size(budget: int, bytes_per_chip: int, n_chips: int) -> int:
    """Chips per chunk so that a chunk's working set stays under `budget` (at least 1)."""
    return max(1, min(n_chips, budget // max(bytes_per_chip, 1)))
