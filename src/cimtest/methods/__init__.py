"""methods/: test generation and decision rules (fit from the model, respond, decide)."""

from cimtest.methods.base import TestMethod, check_is_fitted
from cimtest.methods.btv import BayesianTestVector, default_samples, kl_divergence

__all__ = [
    "BayesianTestVector",
    "TestMethod",
    "check_is_fitted",
    "default_samples",
    "kl_divergence",
]
