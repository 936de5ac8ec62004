"""cimtest: dataset-agnostic functional tests for DNNs on memristive compute-in-memory chips."""

import logging

from cimtest import _reproducible

_reproducible.pin()  # before anything imports torch and runs a matmul

from cimtest.exceptions import (
    ArtifactError,
    CimtestError,
    ConfigError,
    DataError,
    ModelError,
    NotFittedError,
)

__version__ = "0.1.0"
__all__ = [
    "ArtifactError",
    "CimtestError",
    "ConfigError",
    "DataError",
    "ModelError",
    "NotFittedError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
