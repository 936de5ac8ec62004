"""hold_out: the seeded draw compare holds real images out of a user's --data with."""

import pytest
import torch

from cimtest.data.dataset import Dataset, hold_out
from cimtest.exceptions import DataError


def _numbered(n: int) -> Dataset:
    """n one-feature samples whose feature is their index."""
    return Dataset(x=torch.arange(n, dtype=torch.float32).unsqueeze(1),
                   y=torch.zeros(n, dtype=torch.int64), num_classes=2,
                   task="classification", name="numbered")


@pytest.mark.parametrize(("seed", "held"), [(0, [4, 5, 7, 13, 19]), (7, [7, 9, 12, 15, 17])])
def test_hold_out_draws_the_documented_images(seed, held):
    """round(0.25 * 20) = 5 images, these for these seeds (scikit-learn's ShuffleSplit holds
    out 1, 8, 10, 18, 19 at seed 0: dataset.py says why it is not used); both parts keep
    the original order."""
    rest, pool = hold_out(_numbered(20), 0.25, seed)
    assert pool.x.squeeze(1).int().tolist() == held
    assert rest.x.squeeze(1).int().tolist() == [i for i in range(20) if i not in held]


def test_hold_out_keeps_one_on_each_side_and_refuses_what_it_cannot_split():
    assert [len(part) for part in hold_out(_numbered(3), 0.01)] == [2, 1]
    assert [len(part) for part in hold_out(_numbered(3), 0.99)] == [1, 2]
    with pytest.raises(DataError, match="share"):
        hold_out(_numbered(1), 0.5)
