"""report/: side-by-side comparisons of test methods, tables, plots and the HTML report.

The comparison's names load on first use, so that the command line can import the light
modules of report/ (the experiments, markdown) without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cimtest.report.comparison import Comparison, compare, compare_across, default_methods

__all__ = ["Comparison", "compare", "compare_across", "default_methods"]


def __getattr__(name: str) -> object:
    """Import the comparison when one of its names is first used."""
    if name in __all__:
        from cimtest.report import comparison

        return getattr(comparison, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
