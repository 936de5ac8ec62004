"""Read the outputs that chips recorded on an exported test's inputs, checked before any verdict.

A test engineer runs an exported test's inputs on a bench and records what each chip
answered. This module reads that file, whatever its format, into one float32 array of
shape (chips, inputs, *output_shape) in the exported input order, and refuses in one line
anything that would give a chip a wrong verdict: a wrong shape, a missing or repeated
input, a NaN, a repeated chip id.

Formats, told by the file's suffix:

- ``.npy``: an array of shape (chips, *shape), or one chip's (*shape).
- ``.npz``: the array under ``responses`` (or the file's only array), with optional chip
  ids under ``chips``.
- ``.csv`` / ``.parquet``: a long table, one row per (chip, input), with columns ``chip``,
  ``input`` (0-based index in the exported order) and ``out_0`` ... ``out_{M-1}``, one per
  output element flattened in C order. Rows may come in any order; chips keep the order in
  which they first appear.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cimtest.exceptions import TesterError, first_line

__all__ = ["SUFFIXES", "Responses", "read_responses"]

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")
"""The file suffixes `read_responses` knows, each naming its format."""

_NA_TEXT = ["", "nan", "NaN", "NAN", "-nan", "NA", "N/A", "null", "NULL"]
"""Cells of a CSV output column read as NaN (then refused, with a count), never as text."""

_LOAD_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)
"""What `np.load` raises on a missing, truncated, corrupt or pickled file."""


@dataclass(frozen=True)
class Responses:
    """Recorded outputs of chips on an exported test's inputs, in the exported order.

    Attributes
    ----------
    chips : tuple of str
        The chip ids, unique, in the file's order.
    outputs : numpy.ndarray
        float32 of shape (n_chips, n_inputs, *output_shape): chip ``i``'s output on
        input ``j`` is ``outputs[i, j]``.
    """

    chips: tuple[str, ...]
    outputs: np.ndarray

    def __post_init__(self) -> None:
        """Refuse chips and outputs that do not pair up one to one."""
        if self.outputs.ndim < 2 or self.outputs.shape[0] != len(self.chips):
            raise TesterError(
                f"responses of shape {self.outputs.shape} do not match {len(self.chips)} chip ids"
            )


def read_responses(
    path: str | os.PathLike,
    shape: Sequence[int],
    *,
    chip_ids: Sequence[str] | str | os.PathLike | None = None,
) -> Responses:
    """Read a file of recorded responses and check it against the exported test's shape.

    Parameters
    ----------
    path : str or path-like
        A ``.npy``, ``.npz``, ``.csv`` or ``.parquet`` file (see the module docstring).
    shape : sequence of int
        One chip's responses, ``(n_inputs, *output_shape)``: e.g. ``(4, 10)`` for four
        inputs answered with ten logits each.
    chip_ids : sequence of str, or path, optional
        The chips' ids for an array file, in its order: a sequence, or a text file with one
        id per line (blank lines ignored). By default an ``.npz``'s ``chips``, else
        ``"0"``, ``"1"``, ... Refused for tables, which name their chips.

    Returns
    -------
    Responses
        The chip ids and their float32 outputs of shape (n_chips, *shape).

    Raises
    ------
    TesterError
        In one line naming the file, what was expected and what was found: a missing,
        unreadable or unknown file; a wrong shape or dtype; a chip missing an input or
        having one twice; an input index out of range; missing or unknown columns; NaN or
        infinite values; repeated or empty chip ids; no chips at all.
    """
    path = Path(path)
    shape = _check_shape(shape)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise TesterError(
            f"{path}: unknown responses format {path.suffix!r}; expected one of "
            f"{', '.join(SUFFIXES)}"
        )
    if not path.is_file():
        raise TesterError(f"{path}: no such responses file")
    if suffix in (".csv", ".parquet"):
        if chip_ids is not None:
            raise TesterError(f"{path}: chip ids cannot be given for a table; its 'chip' column "
                              "names the chips")
        chips, outputs = _read_table(path, shape)
    else:
        array, stored_ids = _read_npz(path) if suffix == ".npz" else (_read_npy(path), None)
        outputs = _chip_array(path, array, shape)
        chips = _chip_ids(path, len(outputs), chip_ids, stored_ids)
    _check_chips(path, chips)
    _check_finite(path, chips, outputs)
    return Responses(chips, outputs)


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Return `shape` as a tuple of positive ints, or refuse it."""
    try:
        checked = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TesterError(f"expected response shape is not a tuple of sizes: {shape!r}") from None
    if not checked or min(checked) < 1:
        raise TesterError(f"expected response shape must be (n_inputs, *output_shape) of "
                          f"positive sizes, got {checked}")
    return checked


def _expected(shape: tuple[int, ...]) -> str:
    """Write the expected array shape as ``(chips, 4, 10)``."""
    return "(" + ", ".join(["chips", *map(str, shape)]) + ")"


def _load(path: Path) -> Any:
    """`np.load` without ever unpickling (an array, or an open .npz), errors as TesterErrors."""
    try:
        return np.load(path, allow_pickle=False)
    except _LOAD_ERRORS as e:
        raise TesterError(f"cannot read {path}: {first_line(e)}") from e


def _read_npy(path: Path) -> np.ndarray:
    """The array of an .npy file."""
    array = _load(path)
    if not isinstance(array, np.ndarray):
        array.close()
        raise TesterError(f"{path}: expected one .npy array, found an .npz archive")
    return array


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The responses array of an .npz (``responses``, or its only array) and its ``chips``."""
    archive = _load(path)
    if isinstance(archive, np.ndarray):
        raise TesterError(f"{path}: expected an .npz archive, found a single .npy array")
    with archive:
        names = archive.files
        arrays = [n for n in names if n != "chips"]
        if "responses" in names:
            key = "responses"
        elif len(arrays) == 1:
            key = arrays[0]
        else:
            raise TesterError(f"{path}: expected an array named 'responses' (or a single array), "
                              f"found {names}")
        try:
            return archive[key], archive["chips"] if "chips" in names else None
        except _LOAD_ERRORS as e:
            raise TesterError(f"cannot read {path}: {first_line(e)}") from e


def _chip_array(path: Path, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`array` as float32 of shape (chips, *shape), one chip's ``shape`` taken as one chip."""
    if array.dtype.kind not in "fiu":
        raise TesterError(f"{path}: responses of dtype {array.dtype}; expected float or integer "
                          "numbers")
    if array.shape == shape:
        array = array[np.newaxis]
    if array.shape[1:] != shape:
        raise TesterError(f"{path}: expected responses of shape {_expected(shape)}, found "
                          f"{array.shape}")
    if len(array) == 0:
        raise TesterError(f"{path}: holds no chips")
    with np.errstate(over="ignore"):  # beyond float32's range becomes inf, refused later
        return np.ascontiguousarray(array, dtype=np.float32)


def _chip_ids(
    path: Path,
    n_chips: int,
    chip_ids: Sequence[str] | str | os.PathLike | None,
    stored: np.ndarray | None,
) -> tuple[str, ...]:
    """The ids of an array file's chips: given, stored in the .npz, or "0", "1", ..."""
    stored_ids = None if stored is None else _stored_ids(path, stored)
    if chip_ids is None:
        if stored_ids is None:
            return tuple(map(str, range(n_chips)))
        ids, source = stored_ids, f"'chips' of {path}"
    elif isinstance(chip_ids, (str, os.PathLike)):
        ids, source = _read_id_file(Path(chip_ids)), str(chip_ids)
    else:
        ids, source = tuple(str(c) for c in chip_ids), "the given list"
    if len(ids) != n_chips:
        raise TesterError(f"{len(ids)} chip ids in {source}, but {path} holds {n_chips} chips")
    if stored_ids is not None and ids != stored_ids:
        raise TesterError(f"the chip ids in {source} differ from the 'chips' stored in {path}")
    return ids


def _stored_ids(path: Path, stored: np.ndarray) -> tuple[str, ...]:
    """The chip ids an .npz stores under ``chips``: a 1-D array of strings (or integers)."""
    if stored.ndim != 1 or stored.dtype.kind not in "USiu":
        raise TesterError(f"{path}: 'chips' must be a 1-D array of ids, found {stored.dtype} of "
                          f"shape {stored.shape}")
    if stored.dtype.kind == "S":
        try:
            stored = np.char.decode(stored, "utf-8")
        except UnicodeDecodeError as e:
            raise TesterError(f"{path}: 'chips' are not UTF-8 text: {e}") from e
    return tuple(str(c) for c in stored.tolist())


def _read_id_file(path: Path) -> tuple[str, ...]:
    """The chip ids in a text file, one a line, blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TesterError(f"cannot read chip ids from {path}: {first_line(e)}") from e
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _read_table(path: Path, shape: tuple[int, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """Chips and outputs of a long CSV/Parquet table, one row per (chip, input), any order."""
    n_inputs, n_out = shape[0], math.prod(shape[1:])
    out_cols = [f"out_{k}" for k in range(n_out)]
    try:
        if path.suffix.lower() == ".csv":
            # chip ids stay text ("NA", "007"); output cells that are empty or "nan" become NaN
            table = pd.read_csv(path, dtype={"chip": str}, keep_default_na=False,
                                na_values={c: _NA_TEXT for c in out_cols})
        else:
            table = pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError, ImportError) as e:
        raise TesterError(f"cannot read {path}: {first_line(e)}") from e
    if len(table) == 0:
        raise TesterError(f"{path}: holds no chips")
    _check_columns(path, table, out_cols)

    codes, uniques = pd.factorize(table["chip"])
    if (codes < 0).any():
        raise TesterError(f"{path}: row {int(np.argmax(codes < 0))} has no chip id")
    chips = tuple(str(c) for c in uniques.tolist())
    inputs = table["input"].to_numpy()
    if inputs.dtype.kind not in "iu":
        raise TesterError(f"{path}: column 'input' must hold integer input indices, found "
                          f"{table['input'].dtype}")
    outside = (inputs < 0) | (inputs >= n_inputs)
    if outside.any():
        row = int(np.argmax(outside))
        raise TesterError(f"{path}: input index {inputs[row]} of chip {chips[codes[row]]!r} is "
                          f"outside 0..{n_inputs - 1}")

    slot = codes.astype(np.int64) * n_inputs + inputs  # each (chip, input) must fill one slot
    counts = np.bincount(slot, minlength=len(chips) * n_inputs)
    for bad, what in ((counts > 1, "more than one row"), (counts == 0, "no row")):
        if bad.any():
            first = int(np.argmax(bad))
            raise TesterError(f"{path}: chip {chips[first // n_inputs]!r} has {what} for input "
                              f"{first % n_inputs}; expected one row for each of inputs "
                              f"0..{n_inputs - 1}")

    outputs = np.empty((len(chips) * n_inputs, n_out), dtype=np.float32)
    with np.errstate(over="ignore"):
        outputs[slot] = table[out_cols].to_numpy(dtype=np.float32)
    return chips, outputs.reshape(len(chips), *shape)


def _check_columns(path: Path, table: pd.DataFrame, out_cols: list[str]) -> None:
    """Refuse a table without exactly the columns chip, input, out_0 ... out_{M-1}, numeric."""
    expected = ["chip", "input", *out_cols]
    columns = [str(c) for c in table.columns]
    missing = [c for c in expected if c not in columns]
    if missing:
        raise TesterError(f"{path}: missing column(s) {_few(missing)}; expected chip, input, "
                          f"out_0..out_{len(out_cols) - 1}")
    extra = [c for c in columns if c not in expected]
    if extra:
        raise TesterError(f"{path}: unknown column(s) {_few(extra)}; expected chip, input, "
                          f"out_0..out_{len(out_cols) - 1}")
    for c in out_cols:
        dtype = table[c].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise TesterError(f"{path}: column {c!r} must hold numbers, found {dtype}")


def _check_chips(path: Path, chips: tuple[str, ...]) -> None:
    """Refuse empty or repeated chip ids, naming one."""
    if "" in chips:
        raise TesterError(f"{path}: chip {chips.index('')} has an empty id")
    if len(set(chips)) != len(chips):
        codes, uniques = pd.factorize(pd.Series(chips, dtype=object))
        twice = np.bincount(codes) > 1
        raise TesterError(f"{path}: chip id {uniques[int(np.argmax(twice))]!r} appears more "
                          f"than once ({int(twice.sum())} ids repeated)")


def _check_finite(path: Path, chips: tuple[str, ...], outputs: np.ndarray) -> None:
    """Refuse NaN or infinite outputs, saying how many and the first chip that has one."""
    bad = ~np.isfinite(outputs)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(chips), -1).any(axis=1)))
        raise TesterError(f"{path}: {int(bad.sum())} NaN or infinite values (or beyond "
                          f"float32's range), the first on chip {chips[first]!r}")


def _few(names: list[str], limit: int = 5) -> str:
    """List up to `limit` names, saying how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


