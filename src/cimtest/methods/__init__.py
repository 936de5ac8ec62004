"""methods/: test generation and decision rules, every one a `TestMethod`: ``fit`` from the
model (and chips where it learns from them), ``respond``, ``score``, ``decide``, ``save``."""

from cimtest.methods.base import ChipOutcomes, Chips, TestMethod, check_is_fitted
from cimtest.methods.baselines import (
    DatasetAwareTest,
    FGSMTestImages,
    NoiseImagesTest,
    PointTestVectors,
    RandomSyntheticTest,
)
from cimtest.methods.btv import BayesianTestVector, default_samples, kl_divergence
from cimtest.methods.egis import EntropyImageTest
from cimtest.methods.hybrid import HybridTest
from cimtest.methods.learned import LearnedTest, OptimizedTest

__all__ = [
    "BayesianTestVector",
    "ChipOutcomes",
    "Chips",
    "DatasetAwareTest",
    "EntropyImageTest",
    "FGSMTestImages",
    "HybridTest",
    "LearnedTest",
    "NoiseImagesTest",
    "OptimizedTest",
    "PointTestVectors",
    "RandomSyntheticTest",
    "TestMethod",
    "check_is_fitted",
    "default_samples",
    "kl_divergence",
]
