"""The experiments of `cimtest reproduce`, defined in `cimtest.report.experiments`."""

from cimtest.report.experiments import EXPERIMENTS, Experiment, Results

__all__ = ["EXPERIMENTS", "Experiment", "Results"]
