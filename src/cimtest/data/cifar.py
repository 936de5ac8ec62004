"""CIFAR-10/100 binary batches: which files a folder holds and what one file holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cimtest.exceptions import DataError

__all__ = ["cifar_files", "read_cifar_file"]

_CIFAR_PIXELS = 3 * 32 * 32
_CIFAR_TEST_FILES = ("test_batch.bin", "test.bin")
_CIFAR_TRAIN_GLOBS = ("data_batch_*.bin", "train.bin")


def cifar_files(folder: Path) -> list[Path]:
    """The test batch of a CIFAR folder if there is one, else its train batches, else []."""
    for name in _CIFAR_TEST_FILES:
        if (folder / name).is_file():
            return [folder / name]
    for pattern in _CIFAR_TRAIN_GLOBS:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return found
    return []


def read_cifar_file(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Return uint8 (n, 3, 32, 32) pixels, uint8 labels and 10 or 100 from one batch file.

    A CIFAR-10 record is 1 label byte + 3072 pixel bytes (3x32x32, row-major); a CIFAR-100
    record is 2 label bytes (coarse, fine; the fine label is used) + 3072. The kind is the
    record size that divides the file size; if both do, CIFAR-100 when the file or folder
    name contains "100", else CIFAR-10.
    """
    try:
        size = path.stat().st_size
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"CIFAR file {path} cannot be read: {err}") from err
    if size == 0:
        raise DataError(f"CIFAR file {path} is empty.")
    fits10, fits100 = size % (_CIFAR_PIXELS + 1) == 0, size % (_CIFAR_PIXELS + 2) == 0
    if not (fits10 or fits100):
        raise DataError(
            f"CIFAR file {path} is truncated or not a CIFAR batch: its {size} bytes are not a "
            f"multiple of the {_CIFAR_PIXELS + 1}-byte CIFAR-10 or {_CIFAR_PIXELS + 2}-byte "
            "CIFAR-100 record."
        )
    if fits10 and fits100:
        fits100 = "100" in path.name or "100" in path.parent.name
    kind, label_bytes = (100, 2) if fits100 else (10, 1)
    records = data.reshape(-1, _CIFAR_PIXELS + label_bytes)
    labels = records[:, label_bytes - 1]
    if int(labels.max()) >= kind or (kind == 100 and int(records[:, 0].max()) >= 20):
        raise DataError(
            f"CIFAR file {path} has labels out of range for CIFAR-{kind}; it is not a CIFAR batch."
        )
    return records[:, label_bytes:].reshape(-1, 3, 32, 32), labels, kind
