"""load_data: the digits default, image folders, .npz and CIFAR batches, and every error."""

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from cimtest.data import digits, load_data
from cimtest.data.digits import digits_pixels
from cimtest.exceptions import DataError

RAW = {"mean": (0.0,), "std": (1.0,)}  # normalise with identity: x is the pixels in [0, 1]


def raises(name, problem=""):
    """pytest.raises(DataError) whose message must name `name` and, if given, the `problem`."""
    wanted = "".join(f"(?=.*{re.escape(str(text))})" for text in (name, problem) if text)
    return pytest.raises(DataError, match=f"(?s){wanted}")


# ---- fixtures -------------------------------------------------------------------------------


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def grey_folder(tmp_path):
    """Two classes, sorted 'a' < 'b', of 5x4 grey PNGs with known pixels."""
    rng = np.random.default_rng(0)
    images = {}
    for cls, count in (("b", 1), ("a", 2)):
        for i in range(count):
            array = rng.integers(0, 256, size=(4, 5), dtype=np.uint8)
            array[0, 0] = 255
            write_png(tmp_path / "imgs" / cls / f"{i}.png", array)
            images[(cls, i)] = array
    (tmp_path / "imgs" / "a" / "notes.txt").write_text("not an image")
    return tmp_path / "imgs", images


def cifar_bytes(labels, pixels, fine=None):
    """Records of CIFAR-10 (label, pixels) or, with `fine`, CIFAR-100 (coarse, fine, pixels)."""
    heads = [np.asarray(labels, np.uint8)[:, None]]
    if fine is not None:
        heads.append(np.asarray(fine, np.uint8)[:, None])
    return np.concatenate([*heads, pixels.reshape(len(pixels), -1)], axis=1).tobytes()


def cifar_pixels(n, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    pixels[0, 0, 0, 0], pixels[0, 2, 31, 31] = 255, 0
    return pixels


# ---- digits default -------------------------------------------------------------------------


def test_none_gives_the_digits_test_split():
    assert load_data(None, (1, 8, 8)) is digits(8).test
    assert load_data(None, (3, 32, 32), task="segmentation") is digits(32, "segmentation").test


def test_none_with_statistics_or_num_classes():
    data = load_data(None, (3, 16, 16), **RAW)
    assert torch.equal(data.x, digits_pixels(16)[1].x) and data.name == "digits-16"
    widened = load_data(None, (1, 8, 8), num_classes=12)
    assert widened.num_classes == 12 and torch.equal(widened.x, digits(8).test.x)
    with raises("digits-8"):
        load_data(None, (1, 8, 8), num_classes=5)


@pytest.mark.parametrize("shape", ((3, 8, 8), (1, 32, 32), (3, 28, 28)))
def test_none_with_a_non_digits_shape_raises(shape):
    with pytest.raises(DataError, match="not a digits shape"):
        load_data(None, shape)


# ---- image folder ---------------------------------------------------------------------------


def test_image_folder_round_trips_exactly(grey_folder):
    root, images = grey_folder
    data = load_data(root, (1, 4, 5), **RAW)
    assert data.name == "imgs" and data.num_classes == 2 and data.y.tolist() == [0, 0, 1]
    expected = np.stack([images[("a", 0)], images[("a", 1)], images[("b", 0)]])[:, None] / 255
    assert torch.equal(data.x, torch.from_numpy(expected.astype(np.float32)))
    assert float(data.x.max()) == 1.0


def test_image_folder_rgb_resized_and_used_as_given(tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8) for _ in range(3)]
    for i, array in enumerate(arrays):
        write_png(tmp_path / "rgb" / f"class{i % 2}" / f"{i}.PNG", array)
    exact = load_data(tmp_path / "rgb", (3, 6, 6))  # no normalisation asked: pixels in [0, 1]
    assert torch.equal(exact.x[0], torch.from_numpy(arrays[0].transpose(2, 0, 1) / 255).float())
    data = load_data(tmp_path / "rgb", (3, 4, 4))
    assert data.input_shape == (3, 4, 4)
    assert 0 <= float(data.x.min()) and float(data.x.max()) <= 1


def test_image_folder_errors(tmp_path, grey_folder):
    root, _ = grey_folder
    (tmp_path / "empty").mkdir()
    with raises(tmp_path / "empty", "empty"):
        load_data(tmp_path / "empty", (1, 4, 5))
    (tmp_path / "flat").mkdir()
    write_png(tmp_path / "flat" / "0.png", np.zeros((4, 5), np.uint8))
    with raises(tmp_path / "flat"):
        load_data(tmp_path / "flat", (1, 4, 5))
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    (tmp_path / "noimg" / "a" / "x.txt").write_text("")
    with raises(tmp_path / "noimg", "no images"):
        load_data(tmp_path / "noimg", (1, 4, 5))
    (root / "c").mkdir()
    with raises(root / "c"):
        load_data(root, (1, 4, 5))


def test_image_folder_label_count_and_channels(grey_folder):
    root, _ = grey_folder
    with raises(root, "num_classes=1"):
        load_data(root, (1, 4, 5), num_classes=1)
    assert load_data(root, (1, 4, 5), num_classes=4, **RAW).num_classes == 4
    with raises(root):
        load_data(root, (2, 4, 5))
    with raises(root, "segmentation"):
        load_data(root, (1, 4, 5), task="segmentation")


def test_corrupt_and_truncated_images_are_named(grey_folder):
    root, _ = grey_folder
    (root / "b" / "bad.png").write_bytes(b"this is not a png")
    with raises("bad.png"):
        load_data(root, (1, 4, 5))
    (root / "b" / "bad.png").unlink()
    buffer = io.BytesIO()
    Image.fromarray(np.arange(4096, dtype=np.uint16).reshape(64, 64).astype(np.uint8)).save(
        buffer, format="PNG"
    )
    (root / "a" / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with raises("cut.png"):
        load_data(root, (1, 4, 5))


# ---- npz ------------------------------------------------------------------------------------


def test_npz_uint8_nchw_and_float_nhwc_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(4, 3, 5, 6), dtype=np.uint8)
    y = np.array([0, 2, 1, 2])
    np.savez(tmp_path / "a.npz", x=x, y=y)
    data = load_data(tmp_path / "a.npz", (3, 5, 6), **RAW)
    assert torch.equal(data.x, torch.from_numpy(x).float() / 255)
    assert data.y.dtype == torch.int64 and data.y.tolist() == [0, 2, 1, 2]
    assert data.num_classes == 3 and data.name == "a.npz"
    floats = rng.random((4, 5, 6, 3)).astype(np.float32)
    np.savez(tmp_path / "b.npz", x=floats, y=y.astype(np.uint8))
    data = load_data(tmp_path / "b.npz", (3, 5, 6), mean=0.5, std=(0.5, 0.25, 1.0))
    expected = (torch.from_numpy(floats.transpose(0, 3, 1, 2)) - 0.5) / torch.tensor(
        [0.5, 0.25, 1.0]
    ).reshape(1, 3, 1, 1)
    assert torch.allclose(data.x, expected)


def test_npz_grey_without_channel_axis_and_segmentation(tmp_path):
    x = np.random.default_rng(3).random((2, 4, 4))
    y = np.zeros((2, 4, 4), np.int64)
    y[:, 1:3, 1:3] = 3
    np.savez(tmp_path / "seg.npz", x=x, y=y)
    data = load_data(tmp_path / "seg.npz", (1, 4, 4), task="segmentation", **RAW)
    assert data.x.shape == (2, 1, 4, 4) and torch.equal(data.y, torch.from_numpy(y))
    assert data.num_classes == 4 and data.task == "segmentation"


@pytest.mark.parametrize(
    "arrays, shape, problem",
    [
        ({"x": np.zeros((2, 3, 4, 4), np.uint8), "y": np.zeros(2, int)}, (3, 5, 5), "shape"),
        ({"x": np.zeros((2, 1, 4, 4), np.uint8)}, (1, 4, 4), "no array y"),
        ({"y": np.zeros(2, int)}, (1, 4, 4), "no array x"),
        ({"x": np.zeros((2, 1, 4, 4), np.uint8), "y": np.zeros(3, int)}, (1, 4, 4), "y holds 3"),
        ({"x": np.zeros((0, 1, 4, 4), np.uint8), "y": np.zeros(0, int)}, (1, 4, 4), "no samples"),
        ({"x": np.full((1, 1, 4, 4), np.nan), "y": np.zeros(1, int)}, (1, 4, 4), "NaN"),
        ({"x": np.full((1, 1, 4, 4), np.inf), "y": np.zeros(1, int)}, (1, 4, 4), "Inf"),
        ({"x": np.zeros((1, 1, 4, 4), np.int32), "y": np.zeros(1, int)}, (1, 4, 4), "int32"),
        ({"x": np.zeros((1, 1, 4, 4)), "y": np.zeros(1)}, (1, 4, 4), "integer"),
        ({"x": np.zeros((2, 1, 4, 4)), "y": np.array([0, -1])}, (1, 4, 4), ">= 0"),
        ({"x": np.zeros((1, 1, 4, 4)), "y": np.array([[0]])}, (1, 4, 4), "shape"),
        ({"x": np.zeros((1, 1, 4, 4)), "y": np.array([None])}, (1, 4, 4), "cannot be read"),
    ],
)
def test_npz_errors(tmp_path, arrays, shape, problem):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with raises("bad.npz", problem):
        load_data(path, shape)


def test_npz_labels_must_be_below_num_classes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1, 2, 2)), y=np.array([0, 2]))
    with raises("d.npz", "num_classes=2"):
        load_data(tmp_path / "d.npz", (1, 2, 2), num_classes=2, **RAW)


def test_npz_that_is_not_an_archive(tmp_path):
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with raises("single.npz"):
        load_data(tmp_path / "single.npz", (1, 2, 2))
    (tmp_path / "junk.npz").write_bytes(b"junk" * 10)
    with raises("junk.npz"):
        load_data(tmp_path / "junk.npz", (1, 2, 2))


def test_npz_is_used_as_stored_unless_asked(tmp_path):
    """Floats are kept exactly (even outside [0, 1] or constant); a normalisation is applied
    only when given, or when the .npz stores mean and std; the arguments win over them."""
    x = np.random.default_rng(4).normal(3.0, 2.0, size=(3, 2, 2, 2)).astype(np.float32)
    x[:, 1] = 7.0  # a constant channel is fine as stored
    np.savez(tmp_path / "raw.npz", x=x, y=np.array([0, 1, 1]))
    assert torch.equal(load_data(tmp_path / "raw.npz", (2, 2, 2)).x, torch.from_numpy(x))
    mean, std = np.array([3.0, 7.0]), np.array([2.0, 0.5])
    np.savez(tmp_path / "stats.npz", x=x, y=np.array([0, 1, 1]), mean=mean, std=std)
    stored = load_data(tmp_path / "stats.npz", (2, 2, 2)).x
    expected = (torch.from_numpy(x) - torch.tensor([3.0, 7.0]).reshape(1, 2, 1, 1)) / torch.tensor(
        [2.0, 0.5]).reshape(1, 2, 1, 1)
    assert torch.allclose(stored, expected)
    given = load_data(tmp_path / "stats.npz", (2, 2, 2), mean=0.0, std=1.0).x
    assert torch.equal(given, torch.from_numpy(x))
    np.savez(tmp_path / "half.npz", x=x, y=np.array([0, 1, 1]), mean=mean)
    with raises("half.npz", "not std"):
        load_data(tmp_path / "half.npz", (2, 2, 2))
    np.savez(tmp_path / "long.npz", x=x, y=np.array([0, 1, 1]), mean=np.zeros(3), std=np.ones(3))
    with raises("long.npz", "stored mean must hold 1 or 2"):
        load_data(tmp_path / "long.npz", (2, 2, 2))


# ---- CIFAR binary batches -------------------------------------------------------------------


def test_cifar10_file_round_trips_exactly(tmp_path):
    pixels = cifar_pixels(3)
    (tmp_path / "test_batch.bin").write_bytes(cifar_bytes([0, 9, 3], pixels))
    data = load_data(tmp_path / "test_batch.bin", (3, 32, 32), **RAW)
    assert torch.equal(data.x, torch.from_numpy(pixels).float() / 255)
    assert data.x[0, 0, 0, 0] == 1.0 and data.x[0, 2, 31, 31] == 0.0
    assert data.y.tolist() == [0, 9, 3] and data.num_classes == 10
    assert data.name == "test_batch.bin"


def test_cifar100_file_uses_the_fine_label(tmp_path):
    pixels = cifar_pixels(2, seed=1)
    (tmp_path / "test.bin").write_bytes(cifar_bytes([19, 3], pixels, fine=[99, 42]))
    data = load_data(tmp_path / "test.bin", (3, 32, 32), **RAW)
    assert torch.equal(data.x, torch.from_numpy(pixels).float() / 255)
    assert data.y.tolist() == [99, 42] and data.num_classes == 100


def test_cifar_folder_prefers_the_test_batch(tmp_path):
    train, test = cifar_pixels(2, seed=2), cifar_pixels(1, seed=3)
    (tmp_path / "data_batch_1.bin").write_bytes(cifar_bytes([1, 2], train))
    (tmp_path / "data_batch_2.bin").write_bytes(cifar_bytes([3, 4], train))
    assert load_data(tmp_path, (3, 32, 32), **RAW).y.tolist() == [1, 2, 3, 4]
    (tmp_path / "test_batch.bin").write_bytes(cifar_bytes([5], test))
    data = load_data(tmp_path, (3, 32, 32), **RAW)
    assert data.y.tolist() == [5] and torch.equal(data.x, torch.from_numpy(test).float() / 255)


def test_cifar100_folder_prefers_test_bin(tmp_path):
    (tmp_path / "train.bin").write_bytes(cifar_bytes([0], cifar_pixels(1), fine=[7]))
    (tmp_path / "test.bin").write_bytes(cifar_bytes([0], cifar_pixels(1), fine=[8]))
    assert load_data(tmp_path, (3, 32, 32), **RAW).y.tolist() == [8]


def test_cifar_is_resized_and_greyed_to_the_input_shape(tmp_path):
    pixels = np.full((1, 3, 32, 32), 255, np.uint8)
    pixels[:, :, :16] = 0
    (tmp_path / "t.bin").write_bytes(cifar_bytes([1], pixels))
    small = load_data(tmp_path / "t.bin", (3, 16, 16), **RAW)
    assert small.input_shape == (3, 16, 16)
    assert float(small.x[0, :, 0].max()) == 0.0 and float(small.x[0, :, -1].min()) == 1.0
    grey = load_data(tmp_path / "t.bin", (1, 32, 32), **RAW)
    assert grey.input_shape == (1, 32, 32)
    assert torch.allclose(grey.x[0, 0, -1], torch.ones(32))


def test_cifar_size_ambiguity_prefers_cifar10_unless_named_100(tmp_path):
    blob = bytes(3073 * 3074)  # divisible by both record sizes; all labels 0
    (tmp_path / "batch.bin").write_bytes(blob)
    (tmp_path / "cifar100.bin").write_bytes(blob)
    assert len(load_data(tmp_path / "batch.bin", (3, 32, 32), **RAW)) == 3074
    hundred = load_data(tmp_path / "cifar100.bin", (3, 32, 32), **RAW)
    assert len(hundred) == 3073 and hundred.num_classes == 100


def test_cifar_errors(tmp_path):
    (tmp_path / "cut.bin").write_bytes(cifar_bytes([1, 2], cifar_pixels(2))[:-7])
    with raises("cut.bin", "truncated"):
        load_data(tmp_path / "cut.bin", (3, 32, 32))
    (tmp_path / "none.bin").write_bytes(b"")
    with raises("none.bin", "empty"):
        load_data(tmp_path / "none.bin", (3, 32, 32))
    (tmp_path / "label.bin").write_bytes(cifar_bytes([10], cifar_pixels(1)))
    with raises("label.bin", "CIFAR-10"):
        load_data(tmp_path / "label.bin", (3, 32, 32))
    (tmp_path / "ok.bin").write_bytes(cifar_bytes([1, 9], cifar_pixels(2)))
    with raises("ok.bin", "num_classes=5"):
        load_data(tmp_path / "ok.bin", (3, 32, 32), num_classes=5)
    with raises("ok.bin"):
        load_data(tmp_path / "ok.bin", (4, 32, 32))
    with raises("ok.bin", "segmentation"):
        load_data(tmp_path / "ok.bin", (3, 32, 32), task="segmentation")


# ---- dispatch and arguments -----------------------------------------------------------------


def test_missing_path_and_unknown_format(tmp_path):
    with raises("nowhere.npz", "does not exist"):
        load_data(tmp_path / "nowhere.npz", (1, 8, 8))
    (tmp_path / "data.csv").write_text("1,2,3")
    with raises("data.csv", "unknown data format"):
        load_data(str(tmp_path / "data.csv"), (1, 8, 8))


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"mean": (0.5,)}, "both mean and std"),
        ({"mean": (0.1, 0.2), "std": (1.0,)}, "mean must hold 1 or 3"),
        ({"mean": 0.0, "std": 0.0}, "std must be positive"),
        ({"mean": 0.0, "std": float("nan")}, "std must hold"),
        ({"mean": [[0.0]], "std": 1.0}, "mean must hold"),
        ({"mean": "grey", "std": 1.0}, "mean must hold"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 2.0}, "num_classes"),
        ({"task": "detection"}, "classification, segmentation"),
    ],
)
def test_bad_arguments(kwargs, problem):
    with pytest.raises(DataError, match=re.escape(problem)):
        load_data(None, (3, 16, 16), **kwargs)


@pytest.mark.parametrize("shape", ((3, 32, 32, 1), (), (0, 8, 8), (1, 8.0, 8), (True, 8, 8), 8))
def test_bad_input_shape(shape):
    with pytest.raises(DataError, match="input_shape"):
        load_data(None, shape)
