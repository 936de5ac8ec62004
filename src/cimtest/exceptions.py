"""One root exception for cimtest, with a subclass for each subsystem, and its warnings."""

__all__ = [
    "ArtifactError",
    "CimtestError",
    "ConfigError",
    "DataError",
    "DuplicateCampaignError",
    "ModelError",
    "NotFittedError",
    "QuantisationWarning",
    "StoreError",
    "TesterError",
    "first_line",
]


class CimtestError(Exception):
    """Root of every error cimtest raises on purpose; the CLI prints it in one line."""


class DataError(CimtestError):
    """A dataset is missing, unreadable, empty or of the wrong shape or labels."""


class ModelError(CimtestError):
    """A model cannot be built or loaded, or its weights are invalid (NaN/Inf, keys, shapes)."""


class ConfigError(CimtestError, ValueError):
    """A parameter or a fault spec is out of its allowed range or malformed."""


class ArtifactError(CimtestError):
    """A test artefact is corrupt, of an unknown format, or made for another model."""


class NotFittedError(CimtestError, ValueError, AttributeError):
    """A test method was used before `fit`."""


class StoreError(CimtestError):
    """A campaign store cannot be opened, read or written."""


class TesterError(CimtestError):
    """An exported test, a file of recorded responses or a chip driver is invalid or fails."""

    __test__ = False  # not a pytest test class despite the name


class DuplicateCampaignError(StoreError):
    """A store already holds a campaign with another spec; pass `--new` to start over."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name: what a
    one-line error quotes of a library's (torch's run over many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class QuantisationWarning(UserWarning):
    """Quantisation lost more than expected (e.g. many weights clipped)."""
