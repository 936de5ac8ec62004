"""Load a user's data (image folder, ``.npz``, CIFAR binary batches) or the digits default.

Every reader turns its source into the model's input shape and int64 labels: image files and
uint8 arrays are scaled to [0, 1], float arrays are kept as stored. `load_data` then checks the
labels and normalises per channel only when asked (`mean` and `std`, or ``mean`` and ``std``
arrays stored in the ``.npz``). Nothing is ever unpickled. Every problem is a `DataError`
naming the file or folder at fault.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cimtest.data.cifar import cifar_files, read_cifar_file
from cimtest.data.dataset import Dataset, check_task, normalise
from cimtest.data.digits import SIZES, digits, digits_pixels
from cimtest.exceptions import DataError
from cimtest.tasks import ScoredTask

__all__ = ["IMAGE_EXTENSIONS", "data_input_shape", "load_data"]

_logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".jpeg", ".jpg", ".pgm", ".png")
"""File endings (any case) read as images in an image folder; other files are ignored."""

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's "L" conversion

Stats = float | Sequence[float] | None


def load_data(
    source: str | os.PathLike | None,
    input_shape: tuple[int, ...],
    *,
    task: ScoredTask = "classification",
    mean: Stats = None,
    std: Stats = None,
    num_classes: int | None = None,
) -> Dataset:
    """Load labelled inputs of `input_shape` from a path, as stored, or the digits default.

    Parameters
    ----------
    source : path or None
        None: the digits test split at that shape (1x8x8, 3x16x16, 3x32x32 or 3x64x64).
        A directory of class sub-folders of images, an ``.npz`` with arrays ``x`` and ``y``,
        a CIFAR-10/100 ``.bin`` batch, or a directory holding CIFAR ``.bin`` batches.
    input_shape : (F), (C, L) or (C, H, W)
        The model's input shape; images are converted (folders, CIFAR: (C, H, W) only) or
        checked (npz).
    task : str
        ``"classification"`` (y of shape (N,)) or ``"segmentation"`` (y of shape (N, H, W),
        or (N, L) for (C, L) inputs; only from an ``.npz`` or the digits default).
    mean, std : float or sequence of float, optional
        Per-channel statistics (one per channel, or one for all) to normalise with,
        ``x = (x - mean) / std``, typically those the model was trained with; they apply to
        the inputs as read (pixels in [0, 1] for images and uint8 arrays). Give both or
        neither. If neither, a path's data is used as stored, unless its ``.npz`` holds
        ``mean`` and ``std`` arrays, which are then applied; the digits default is normalised
        with the statistics of its train split.
    num_classes : int, optional
        The number of classes the model knows: every label must be below it. If omitted it
        is the number of class folders, 10 or 100 for CIFAR, or the largest label + 1.

    Returns
    -------
    Dataset
        x float32 (N, *input_shape), y int64, named after the file or folder.

    Raises
    ------
    DataError
        If the path is missing or of an unknown format, holds no or unreadable images,
        has the wrong shape, NaN/Inf pixels, or labels outside ``[0, num_classes)``.
    """
    shape = _check_shape(input_shape)
    check_task(task)
    if num_classes is not None and _positive_int(num_classes) is None:
        raise DataError(f"num_classes must be a positive integer; got {num_classes!r}.")
    if (mean is None) != (std is None):
        raise DataError("Give both mean and std, or neither to use the data as stored.")
    stats = None if mean is None else _check_stats(mean, std, shape[0])
    if source is None:
        _check_digits_shape(shape)
        if stats is None and num_classes is None:
            return digits(size=shape[-1], task=task).test
        return _from_digits(shape, task, stats, num_classes)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"Data path {path} does not exist.")
    pixels, labels, known_classes, stored = _read(path, shape, task)
    classes = _check_labels(labels, path, known_classes if num_classes is None else num_classes)
    if stats is None and stored is not None:
        try:
            stats = _check_stats(*stored, shape[0])
        except DataError as err:
            raise DataError(f"{path}: the stored {err}") from err
    x = pixels if stats is None else normalise(pixels, *stats)
    _logger.info("Loaded %d inputs of shape %s (%d classes) from %s", len(x), shape, classes, path)
    return Dataset(x, labels, classes, task, path.name)


def data_input_shape(
    source: str | os.PathLike, rank: int | None = None, channels: int | None = None
) -> tuple[int, ...]:
    """The input shape a model must take to read `source`, without loading its inputs.

    An ``.npz``'s x of shape (N, *dims) gives `dims`, read from its header; `rank` and
    `channels` (the model's first layer: 2 and C for a Conv1d, 3 and C for a Conv2d) resolve
    the layouts `load_data` accepts: channels last, or no channel axis when C = 1. An image
    folder gives (C, H, W) of its first image (C = `channels` if 1 or 3, else 1 for a grey
    image and 3 otherwise); CIFAR batches give (C, 32, 32).

    Raises
    ------
    DataError
        If the path is missing, of an unknown format, or its x is not an array of inputs of
        rank 1 to 3.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"Data path {path} does not exist.")
    colour = channels if channels in (1, 3) else None
    if path.is_dir() and cifar_files(path) or path.suffix.lower() == ".bin":
        return (colour or 3, 32, 32)
    if path.is_dir():
        return _folder_shape(path, colour)
    if path.suffix.lower() != ".npz":
        _read(path, (1,), "classification")  # raises the unknown-format error
    shape = _npz_x_shape(path)
    dims = shape[1:]
    if not 1 <= len(dims) <= 3:
        raise DataError(f"{path}: x has shape {shape}; it must hold inputs of rank 1 to 3: "
                        "(N, F), (N, C, L) or (N, C, H, W).")
    if rank is not None and channels is not None:
        if len(dims) == rank - 1 and channels == 1:
            return (1, *dims)
        if len(dims) == rank and dims[0] != channels and dims[-1] == channels:
            return (channels, *dims[:-1])
    return dims


def _npz_x_shape(path: Path) -> tuple[int, ...]:
    """The shape of array x in an ``.npz``, read from its header only."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("x.npy") as member:
            version = np.lib.format.read_magic(member)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            return tuple(header(member)[0])
    except KeyError:
        raise DataError(f"{path} has no array x.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} cannot be read as an .npz archive: {err}") from err


def _folder_shape(root: Path, channels: int | None) -> tuple[int, int, int]:
    """(C, H, W) of the first image of the first class folder."""
    for folder in (p for p in _visible(root) if p.is_dir()):
        for file in _visible(folder):
            if file.is_file() and file.suffix.lower() in IMAGE_EXTENSIONS:
                try:
                    with Image.open(file) as image:
                        width, height = image.size
                        grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                    raise DataError(f"Image {file} cannot be read: {err}") from err
                return (channels or (1 if grey else 3), height, width)
    _read_image_folder(root, (1, 1, 1), "classification")  # raises what is missing
    raise DataError(f"Folder {root} holds no images.")


def _positive_int(value: object) -> int | None:
    """Return `value` as a Python int if it is an integer (not a bool) > 0, else None."""
    try:
        number = operator.index(value)
    except TypeError:
        return None
    return number if number > 0 and not isinstance(value, bool) else None


def _check_shape(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    try:
        shape = tuple(_positive_int(d) for d in input_shape)
    except TypeError:
        shape = ()
    if not 1 <= len(shape) <= 3 or None in shape:
        raise DataError(
            "input_shape must be 1 to 3 positive integers, (F), (C, L) or (C, H, W); got "
            f"{input_shape!r}."
        )
    return shape


def _require_images(source: Path, shape: tuple[int, ...], kind: str) -> tuple[int, int, int]:
    """`shape` as (C, H, W), or a `DataError`: `kind` (image files, CIFAR) holds images."""
    if len(shape) != 3:
        raise DataError(
            f"{source}: {kind} holds images (C, H, W); the model takes inputs of shape "
            f"{shape}: give an .npz with x of shape (N, {', '.join(map(str, shape))})."
        )
    return shape


def _check_digits_shape(shape: tuple[int, ...]) -> None:
    shapes = [(1, s, s) if s == 8 else (3, s, s) for s in SIZES]
    if shape in shapes:
        return
    allowed = ", ".join("x".join(map(str, s)) for s in shapes)
    raise DataError(
        f"No data path given and input shape {'x'.join(map(str, shape))} is not a digits "
        f"shape ({allowed}); pass your data (image folder, .npz or CIFAR .bin)."
    )


def _from_digits(
    shape: tuple[int, int, int],
    task: ScoredTask,
    stats: tuple[list[float], list[float]] | None,
    num_classes: int | None,
) -> Dataset:
    """The digits test split normalised with `stats` (default: those of the digits train)."""
    test = digits_pixels(shape[-1], task)[1]
    if stats is None:
        splits = digits(shape[-1], task)
        stats = (list(splits.mean), list(splits.std))
    expected = test.num_classes if num_classes is None else num_classes
    classes = _check_labels(test.y, test.name, expected)
    return Dataset(normalise(test.x, *stats), test.y, classes, task, test.name)


def _check_labels(labels: torch.Tensor, path: Path | str, num_classes: int | None) -> int:
    """Return the number of classes after checking labels are in ``[0, num_classes)``."""
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise DataError(f"{path}: labels must be >= 0; found {low}.")
    if num_classes is not None and high >= num_classes:
        raise DataError(f"{path}: labels must be < num_classes={num_classes}; found {high}.")
    return num_classes if num_classes is not None else high + 1


def _check_stats(mean: Stats, std: Stats, channels: int) -> tuple[list[float], list[float]]:
    """Return `mean` and `std` as lists of one value per channel, checked finite, std > 0."""
    out = []
    for name, value in (("mean", mean), ("std", std)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = np.empty((0, 0))  # not numbers: reported below like a wrong length
        values = array.reshape(-1).tolist() if array.ndim <= 1 else []
        if len(values) == 1:
            values *= channels
        if len(values) != channels or not all(math.isfinite(v) for v in values):
            raise DataError(
                f"{name} must hold 1 or {channels} finite values (one per channel); got {value}."
            )
        out.append(values)
    if min(out[1]) <= 0:
        raise DataError(f"std must be positive; got {std}.")
    return out[0], out[1]


def _read(
    path: Path, shape: tuple[int, ...], task: ScoredTask
) -> tuple[torch.Tensor, torch.Tensor, int | None, tuple[np.ndarray, np.ndarray] | None]:
    """Dispatch on the path: return the inputs as read, int64 labels, the known class count
    and the (mean, std) stored with the data (an ``.npz``'s), if any."""
    if path.is_dir():
        cifar = cifar_files(path)
        read = _read_cifar(cifar, shape, task) if cifar else _read_image_folder(path, shape, task)
        return (*read, None)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path, shape, task)
    if suffix == ".bin":
        return (*_read_cifar([path], shape, task), None)
    raise DataError(
        f"{path} is of an unknown data format; give a folder of class sub-folders of images, "
        "an .npz with arrays x and y, or CIFAR-10/100 .bin batches."
    )


def _require_classification(path: Path, task: ScoredTask, kind: str) -> None:
    if task != "classification":
        raise DataError(
            f"{path}: {kind} holds one label per image, not per pixel; {task} data must "
            "come as an .npz with y of shape (N, H, W)."
        )


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _read_image_folder(
    root: Path, shape: tuple[int, ...], task: ScoredTask
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Images from one sub-folder per class; sorted sub-folder names give class ids 0, 1, ..."""
    _require_classification(root, task, "an image folder")
    shape = _require_images(root, shape, "an image folder")
    entries = _visible(root)
    if not entries:
        raise DataError(f"Folder {root} is empty.")
    classes = [p for p in entries if p.is_dir()]
    if not classes:
        raise DataError(
            f"Folder {root} has no class sub-folders; put the images of each class in a "
            "sub-folder of its own (or give CIFAR .bin batches)."
        )
    files = [
        [f for f in _visible(c) if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
        for c in classes
    ]
    kinds = "/".join(IMAGE_EXTENSIONS)
    if not any(files):
        raise DataError(f"Folder {root} holds no images ({kinds}) in its class sub-folders.")
    for folder, found in zip(classes, files):
        if not found:
            raise DataError(f"Class folder {folder} holds no images ({kinds}).")
    channels, height, width = shape
    if channels not in (1, 3):
        raise DataError(
            f"Image folder {root}: images are read as 1 (grey) or 3 (RGB) channels; "
            f"the input shape asks for {channels}."
        )
    mode = "L" if channels == 1 else "RGB"
    images = np.stack([_read_image(f, mode, (width, height)) for found in files for f in found])
    pixels = torch.from_numpy(images.reshape(len(images), height, width, channels))
    labels = torch.tensor([k for k, found in enumerate(files) for _ in found], dtype=torch.int64)
    return (pixels.permute(0, 3, 1, 2).float() / 255).contiguous(), labels, len(classes)


def _read_image(file: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Return the image as uint8 (H, W) or (H, W, 3), converted to `mode`, resized bilinear."""
    try:
        with Image.open(file) as image:
            image = image.convert(mode)
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"Image {file} cannot be read: {err}") from err


def _read_npz(
    path: Path, shape: tuple[int, ...], task: ScoredTask
) -> tuple[torch.Tensor, torch.Tensor, None, tuple[np.ndarray, np.ndarray] | None]:
    """Arrays ``x`` (N, *shape) (see `_npz_layout`), float or uint8 (/255), integer ``y``,
    and optional ``mean`` and ``std`` (both or neither) to normalise x with."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds a single .npy array, not an .npz with x and y.")
        with archive:
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise DataError(
                    f"{path} has no array {' or '.join(missing)}; it holds {archive.files}."
                )
            x, y = archive["x"], archive["y"]
            given = [k for k in ("mean", "std") if k in archive.files]
            if len(given) == 1:
                raise DataError(f"{path} holds {given[0]} but not "
                                f"{'std' if given[0] == 'mean' else 'mean'}; store both or neither.")
            stored = (archive["mean"], archive["std"]) if given else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} cannot be read as an .npz archive: {err}") from err
    layout = _npz_layout(x, shape, path)
    if len(x) == 0:
        raise DataError(f"{path} holds no samples.")
    return _npz_pixels(layout, path), _npz_labels(y, len(x), path, shape, task), None, stored


def _npz_layout(x: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """x as (N, *shape): (N, *shape) itself, channels last ((N, H, W, C) or (N, L, C)), or
    without the channel axis when C = 1 ((N, H, W) or (N, L))."""
    if x.ndim == 0:
        raise DataError(f"{path}: x is a single value, not an array of inputs.")
    channels, rest = shape[0], shape[1:]
    if x.shape[1:] == shape:
        return x
    if rest and x.shape[1:] == (*rest, channels):
        return np.moveaxis(x, -1, 1)
    if rest and channels == 1 and x.shape[1:] == rest:
        return x[:, None]
    dims = ", ".join(map(str, shape))
    forms = f"(N, {dims})"
    if rest:
        forms += f" or (N, {', '.join(map(str, rest))}, {channels})"
    raise DataError(f"{path}: x has shape {x.shape}; the input shape {shape} needs {forms}.")


def _npz_pixels(x: np.ndarray, path: Path) -> torch.Tensor:
    """Return float32 inputs: uint8 divided by 255 (pixels in [0, 1]), floats as stored."""
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x)).float() / 255
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: x must be float or uint8; got {x.dtype}.")
    pixels = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(pixels).all():
        raise DataError(f"{path}: x holds NaN or Inf values (in float32).")
    return torch.from_numpy(pixels)


def _npz_labels(
    y: np.ndarray, n: int, path: Path, shape: tuple[int, ...], task: ScoredTask
) -> torch.Tensor:
    """Return int64 labels, checked to be integers of shape (N,) or (N, H, W) as `task` says."""
    if task == "segmentation" and len(shape) < 2:
        raise DataError(f"{path}: segmentation labels each position of (C, L) or (C, H, W) "
                        f"inputs; the input shape is {shape}.")
    if y.ndim == 0 or len(y) != n:
        got = "a scalar" if y.ndim == 0 else f"{len(y)}"
        raise DataError(f"{path}: x holds {n} samples but y holds {got}.")
    expected = (n,) if task == "classification" else (n, *shape[1:])
    if y.shape != expected:
        raise DataError(f"{path}: y must have shape {expected} for {task}; got {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y must hold integer labels; got {y.dtype}.")
    return torch.from_numpy(y.astype(np.int64))


def _read_cifar(
    files: list[Path], shape: tuple[int, ...], task: ScoredTask
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """CIFAR-10/100 batches, concatenated, converted to `shape` (bilinear, grey if C = 1)."""
    _require_classification(files[0], task, "a CIFAR batch")
    shape = _require_images(files[0], shape, "a CIFAR batch")
    batches = [read_cifar_file(f) for f in files]
    kinds = {k for _, _, k in batches}
    if len(kinds) > 1:
        raise DataError(f"{files[0].parent} mixes CIFAR-10 and CIFAR-100 batches.")
    channels, height, width = shape
    if channels not in (1, 3):
        raise DataError(
            f"CIFAR data {files[0]} has 3 channels and can be read as 1 (grey) or 3; "
            f"the input shape asks for {channels}."
        )
    raw = np.concatenate([p for p, _, _ in batches])
    pixels = torch.from_numpy(raw).float() / 255
    if channels == 1:
        pixels = torch.einsum("nchw,c->nhw", pixels, torch.tensor(_LUMA)).unsqueeze(1)
    if (height, width) != (32, 32):
        pixels = F.interpolate(
            pixels, size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
    labels = torch.from_numpy(np.concatenate([y for _, y, _ in batches]).astype(np.int64))
    return pixels.contiguous(), labels, kinds.pop()
