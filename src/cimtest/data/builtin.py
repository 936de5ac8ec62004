"""The built-in data sets by name, at the input shape a model takes: digits, MNIST-1D, MNIST.

Nothing is downloaded: scikit-learn's digits and MNIST's 5,000 images ship inside packages,
MNIST-1D is generated offline (any number of test samples). A zoo model names the set it was
trained on; `--data NAME` gives any model one of them, at its input shape.
"""

from __future__ import annotations

from cimtest.data.dataset import DataSplits, check_task
from cimtest.exceptions import DataError
from cimtest.tasks import ScoredTask

__all__ = ["BUILTIN", "builtin_splits", "default_test_size", "shapes"]

BUILTIN: tuple[str, ...] = ("digits", "mnist1d", "mnist")
"""Names of the built-in data sets."""


def shapes(name: str) -> tuple[tuple[int, ...], ...]:
    """The input shapes built-in set `name` comes in."""
    from cimtest.data.digits import SIZES
    from cimtest.data.mnist import SIDE
    from cimtest.data.mnist1d import LENGTH

    if name == "digits":
        return tuple((1 if s == 8 else 3, s, s) for s in SIZES)
    if name == "mnist1d":
        return ((LENGTH,), (1, LENGTH))
    if name == "mnist":
        return ((1, SIDE, SIDE),)
    raise DataError(f"unknown data set {name!r}; the built-in ones are {', '.join(BUILTIN)}")


def default_test_size(name: str) -> int:
    """Test samples of built-in set `name` unless a run asks for another number."""
    from cimtest.data.digits import TEST_SIZE as DIGITS
    from cimtest.data.mnist import TEST_SIZE as MNIST
    from cimtest.data.mnist1d import TEST_SIZE as MNIST1D

    shapes(name)  # an unknown name fails here
    return {"digits": DIGITS, "mnist1d": MNIST1D, "mnist": MNIST}[name]


def builtin_splits(
    name: str,
    input_shape: tuple[int, ...],
    task: ScoredTask = "classification",
    test_size: int | None = None,
) -> DataSplits:
    """Built-in set `name` at `input_shape`, normalised with its training statistics.

    `test_size`: for a generated set (MNIST-1D) the number of test samples generated (default
    `default_test_size`); for a fixed set, the first `test_size` of its test split (all of it
    if it holds fewer). Raises `DataError` for an unknown name, a shape the set does not come
    in, a task it has no labels for, or a test size below 1.
    """
    from cimtest.data.digits import digits
    from cimtest.data.mnist import mnist
    from cimtest.data.mnist1d import mnist1d

    shape = tuple(int(v) for v in input_shape)
    offered = shapes(name)
    if shape not in offered:
        listed = ", ".join(str(s) for s in offered)
        raise DataError(f"data set {name!r} comes in inputs {listed}; the model takes {shape}")
    check_task(task)
    if task != "classification" and name != "digits":
        raise DataError(f"data set {name!r} has labels for classification only, not {task}")
    if test_size is not None and (isinstance(test_size, bool) or test_size < 1):
        raise DataError(f"the number of test images must be positive; got {test_size}")
    if name == "mnist1d":
        return mnist1d(test_size or default_test_size(name), flat=len(shape) == 1)
    splits = digits(shape[-1], task) if name == "digits" else mnist()
    if test_size is None or test_size >= len(splits.test):
        return splits
    from dataclasses import replace

    return replace(splits, test=splits.test.subset(test_size))
