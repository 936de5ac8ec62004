"""evaluation/: scoring fitted tests on populations of chips, as the commands report them.

Above `methods/` and `engine/`, below `cli/` and `report/`: each function takes fitted tests
and populations and returns rows of the papers' metrics.
"""

from cimtest.evaluation.btv import (
    ChipResults,
    Level,
    chip_results,
    evaluate_btv,
    output_spreads,
    summarise,
)
from cimtest.evaluation.campaign import accuracy_distribution, campaign_summary
from cimtest.evaluation.screening import evaluate_tests

__all__ = ["ChipResults", "Level", "accuracy_distribution", "campaign_summary", "chip_results", "evaluate_btv",
           "evaluate_tests", "output_spreads", "summarise"]
