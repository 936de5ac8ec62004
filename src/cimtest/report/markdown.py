"""Markdown tables of results for the documents `cimtest reproduce` rewrites."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cell", "markdown", "pct", "rows_table"]


def pct(row: dict, key: str) -> str:
    """A rate in percent with its band, ``"93.8 [91.2, 95.7]"``; ``"-"`` when missing."""
    value = row.get(key)
    if value is None:
        return "-"
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    band = "" if low is None else f" [{100 * low:.1f}, {100 * high:.1f}]"
    return f"{100 * value:.1f}{band}"


def markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """A DataFrame as a markdown table, index columns first, numbers rounded."""
    frame = table.reset_index()
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


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
