"""report/: side-by-side comparisons of test methods, tables, plots and the HTML report."""

from cimtest.report.comparison import Comparison, compare, default_methods

__all__ = ["Comparison", "compare", "default_methods"]
