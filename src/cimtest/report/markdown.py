"""Markdown tables of results for the documents `cimtest reproduce` rewrites, and the cells
that every rendering of a `compare` row shares (text table, HTML report, markdown): TA with
its interval and the mark of a tie with the best, the p-value against the best."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NOTE_MARK", "TIE_MARK", "best_method", "cell", "markdown", "method_cell",
           "p_vs_best", "pct", "row_notes", "rows_table", "ta_band", "tie_note"]

TIE_MARK = "†"
"""Follows the TA of a method tied with the best (`cimtest.metrics.paired_against_best`)."""

NOTE_MARK = "‡"
"""Follows the name of a method whose row carries a ``note`` (`row_notes` gives them)."""


def pct(row: dict, key: str) -> str:
    """A rate in percent with its band, ``"93.8 [91.2, 95.7]"``; ``"-"`` when missing."""
    value = row.get(key)
    if value is None:
        return "-"
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    band = "" if low is None else f" [{100 * low:.1f}, {100 * high:.1f}]"
    return f"{100 * value:.1f}{band}"


def markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """A DataFrame as a markdown table, index columns first, each value written by `cell`."""
    # pandas' to_markdown (tabulate) lays out the cells as `cell` writes them: no number
    # parsing, no padding; only the delimiter row's dashes follow the column widths
    return table.reset_index().map(cell, digits=digits).to_markdown(
        index=False, disable_numparse=True, stralign=None)


def rows_table(rows: dict[str, dict[str, object]], index: str) -> str:
    """A markdown table of one row per key of `rows` (named `index`), a column per inner key."""
    import pandas as pd

    return markdown(pd.DataFrame.from_dict(rows, orient="index").rename_axis(index))


def cell(value: object, digits: int) -> str:
    """One table cell: text as is, a missing value as ``-``, a rate below 1 to 3 decimals."""
    if isinstance(value, str):
        return value
    if value is None or math.isnan(value):
        return "-"
    if isinstance(value, float) and not float(value).is_integer() and abs(value) < 1:
        return f"{value:.3f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def ta_band(row: dict) -> str:
    """A comparison row's TA with its 95 % interval, and `TIE_MARK` when it is tied with the
    best: ``"91.2 (89.3-92.8)†"``. A row saved before these were recorded gives TA alone."""
    text = f"{row['ta']:.1f}"
    if row.get("ta_low") is not None and row.get("ta_high") is not None:
        text += f" ({row['ta_low']:.1f}-{row['ta_high']:.1f})"
    return text + (TIE_MARK if row.get("tied_with_best") else "")


def best_method(rows: list[dict]) -> str | None:
    """The method the others were tested against (the row whose ``best`` is True); None for
    rows saved before the test was recorded."""
    return next((r["method"] for r in rows if r.get("best")), None)


def p_vs_best(row: dict, best: str | None) -> str:
    """The cell of a row's McNemar p-value against the best: ``best`` for the best itself,
    ``<0.001``, ``0.031``; ``-`` when not recorded."""
    p = row.get("p_vs_best")
    if p is None or best is None:
        return "-"
    if row["method"] == best:
        return "best"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def tie_note(rows: list[dict]) -> str:
    """The footnote of `TIE_MARK` and the p column; empty for rows without the test."""
    best = best_method(rows)
    if best is None:
        return ""
    return (f"TA (95 % Wilson interval); {TIE_MARK} tied with the best TA ({best}): McNemar's "
            f"exact test of each method's right and wrong verdicts against {best}'s on the "
            "same evaluation chips gives p >= 0.05 (p vs best: its two-sided p-value; each "
            "pair tested at 5 %, uncorrected for their number)")


def method_cell(row: dict) -> str:
    """A comparison row's method name, with `NOTE_MARK` when the row carries a note."""
    return row["method"] + (f" {NOTE_MARK}" if row.get("note") else "")


def row_notes(rows: list[dict]) -> list[str]:
    """One footnote per row that carries a ``note`` (e.g. an FGSM test whose count separates
    no training chips), ``"‡ fgsm: ..."``; none for rows saved before notes were recorded."""
    return [f"{NOTE_MARK} {r['method']}: {r['note']}" for r in rows if r.get("note")]
