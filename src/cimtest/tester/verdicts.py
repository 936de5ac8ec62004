"""One verdict per chip of a lot, and its plain outputs: rows, a summary, a CSV file.

A verdict is a chip's score against the test's one threshold: flagged when the method's
rule says so (``score > threshold``), called "fail", or "uncertain" for a method such as the
Bayesian test vector whose flag means "not certainly good". STDF output is in `stdf`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cimtest._atomic import atomic_file
from cimtest.exceptions import TesterError

__all__ = ["PASS_WORD", "Verdicts", "check_writable", "write_csv"]

PASS_WORD = "pass"
"""What a chip that is not flagged is called."""


@dataclass(frozen=True)
class Verdicts:
    """One verdict per chip: flagged or not, the score, against one threshold.

    Attributes
    ----------
    method : str
        The test method that decided, e.g. ``"egis"`` or ``"btv"``.
    chips : tuple of str
        The chip ids, in the order of the responses they were decided from.
    flagged : numpy.ndarray
        bool of shape (n_chips,): True where the chip is flagged.
    score : numpy.ndarray
        float64 of shape (n_chips,): each chip's score, compared with `threshold`.
    threshold : float
        The method's threshold (finite).
    flag_word : str
        What a flagged chip is called: ``"fail"``, or ``"uncertain"`` (BTV).
    """

    method: str
    chips: tuple[str, ...]
    flagged: np.ndarray
    score: np.ndarray
    threshold: float
    flag_word: str = "fail"

    def __post_init__(self) -> None:
        """Normalise the fields (tuple, float64, float) and refuse inconsistent ones."""
        chips = tuple(map(str, self.chips))
        flagged = np.asarray(self.flagged)
        score = np.asarray(self.score, dtype=np.float64)
        if flagged.dtype != np.bool_:
            raise TesterError(f"verdicts: flagged must be bool, found {flagged.dtype}")
        if flagged.shape != (len(chips),) or score.shape != (len(chips),):
            raise TesterError(f"verdicts: {len(chips)} chips but flagged of shape "
                              f"{flagged.shape} and score of shape {score.shape}")
        if not math.isfinite(self.threshold):
            raise TesterError(f"verdicts: threshold must be finite, found {self.threshold}")
        if not self.flag_word or self.flag_word == PASS_WORD:
            raise TesterError(f"verdicts: flag word must differ from {PASS_WORD!r} and be "
                              f"non-empty, found {self.flag_word!r}")
        object.__setattr__(self, "chips", chips)
        object.__setattr__(self, "flagged", flagged)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "threshold", float(self.threshold))

    def verdict_words(self) -> np.ndarray:
        """Return each chip's verdict, str of shape (n_chips,): ``"pass"`` or `flag_word`."""
        return np.where(self.flagged, self.flag_word, PASS_WORD)

    def rows(self) -> list[dict]:
        """Return one JSON-ready dict per chip: chip, verdict, score, threshold."""
        return [
            {"chip": chip, "verdict": word, "score": score, "threshold": self.threshold}
            for chip, word, score in zip(
                self.chips, self.verdict_words().tolist(), self.score.tolist(), strict=True
            )
        ]

    def summary(self) -> dict:
        """Return the lot in one JSON-ready dict: method, chip, flagged and pass counts, ..."""
        flagged = int(np.count_nonzero(self.flagged))
        return {
            "method": self.method,
            "chips": len(self.chips),
            "flagged": flagged,
            "pass": len(self.chips) - flagged,
            "threshold": self.threshold,
            "flag_word": self.flag_word,
        }


def write_csv(verdicts: Verdicts, path: str | os.PathLike) -> Path:
    """Write the verdicts as CSV, all at once or not at all.

    Parameters
    ----------
    verdicts : Verdicts
        The lot's verdicts.
    path : str or path-like
        The file to write; its folder must exist.

    Returns
    -------
    Path
        `path`, holding columns chip, verdict, score, threshold, one row per chip, scores
        written so that they read back to the same float64.

    Raises
    ------
    TesterError
        If `path` cannot be written (checked before anything is written).
    """
    path = check_writable(path)
    table = pd.DataFrame({
        "chip": pd.Series(verdicts.chips, dtype=object),
        "verdict": verdicts.verdict_words(),
        "score": verdicts.score,
        "threshold": verdicts.threshold,
    })
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)  # floats as repr: they read back bit for bit
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """Return `path` as a Path if a file can be written there; say why not before any work.

    Parameters
    ----------
    path : str or path-like
        The file about to be written (it may exist; it will be replaced).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    TesterError
        ``cannot write PATH: ...`` when `path` is a folder, or its folder is missing or not
        writable.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise TesterError(f"cannot write {path}: it is a folder")
    if not folder.is_dir():
        raise TesterError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TesterError(f"cannot write {path}: folder {folder} is not writable")
    return path

