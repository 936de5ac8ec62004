"""data/: the embedded digits default and loaders for a user's data, as tensors."""

from cimtest.data.augment import augment
from cimtest.data.dataset import Dataset, DataSplits
from cimtest.data.digits import SIZES, digits
from cimtest.data.loaders import data_input_shape, load_data

__all__ = ["SIZES", "DataSplits", "Dataset", "augment", "data_input_shape", "digits",
           "load_data"]
