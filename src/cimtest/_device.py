"""The device chips are drawn and evaluated on: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

torch is imported when a device is resolved, so that the CLI's modules import no heavy
library (a bad ``--device`` is still refused before any work)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeAlias

from cimtest.exceptions import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceLike", "check_device", "resolve_device"]

DeviceLike: TypeAlias = "str | torch.device | None"
"""What a ``device=`` argument takes: a device text, a `torch.device`, or None (the CPU)."""

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(device: DeviceLike = None) -> torch.device:
    """The `torch.device` of `device` (None: the CPU; "auto": CUDA if available, else the
    CPU); `ConfigError` for an unknown device, CUDA where it is not available, or a CUDA
    index out of range."""
    import torch

    if device is None:
        return torch.device("cpu")
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise ConfigError(f"device must be cpu, cuda, cuda:N or auto; got {str(device)!r}")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {text!r}: CUDA is not available here (use --device cpu "
                          "or auto)")
    count = torch.cuda.device_count()
    index = int(match.group(1) or 0)
    if index >= count:
        raise ConfigError(f"device {text!r}: no such CUDA device (this machine has {count}: "
                          f"cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index)


def check_device(device: str) -> str:
    """A ``--device`` checked before any work, as the text `resolve_device` takes (``cpu``,
    ``cuda:1``; ``auto`` resolved); torch is imported only where CUDA must be asked, so
    the default leaves a bad ``--fault`` to be refused without it."""
    text = str(device).strip().lower()
    if text == "cpu":
        return text
    if text != "auto" and _CUDA.fullmatch(text) is None:
        raise ConfigError(f"device must be cpu, cuda, cuda:N or auto; got {str(device)!r}")
    return str(resolve_device(text))
