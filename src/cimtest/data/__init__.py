"""data/: the embedded digits default and loaders for a user's images, as normalised tensors."""

from cimtest.data.dataset import Dataset, DataSplits
from cimtest.data.digits import SIZES, digits
from cimtest.data.loaders import load_data

__all__ = ["SIZES", "DataSplits", "Dataset", "digits", "load_data"]
