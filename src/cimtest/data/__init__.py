"""data/: the built-in data sets (digits, MNIST-1D, MNIST) and loaders for a user's data."""

from cimtest.data.augment import augment
from cimtest.data.builtin import BUILTIN, builtin_splits
from cimtest.data.dataset import Dataset, DataSplits
from cimtest.data.digits import SIZES, digits
from cimtest.data.loaders import data_input_shape, load_data
from cimtest.data.mnist import mnist
from cimtest.data.mnist1d import mnist1d

__all__ = ["BUILTIN", "SIZES", "DataSplits", "Dataset", "augment", "builtin_splits",
           "data_input_shape", "digits", "load_data", "mnist", "mnist1d"]
