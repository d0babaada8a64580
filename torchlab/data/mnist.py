"""MNIST from its IDX files: raw or gzipped, flat in a folder or in torchvision's layout.

The four official files are

    train-images-idx3-ubyte   60,000 x 28 x 28 uint8     t10k-images-idx3-ubyte   10,000 x 28 x 28
    train-labels-idx1-ubyte   60,000 uint8 (0..9)         t10k-labels-idx1-ubyte   10,000

An IDX file is a 4-byte big-endian magic number (0x00000803 for 3-D uint8 images, 0x00000801
for 1-D uint8 labels), one big-endian uint32 per dimension, then the values. We look for each
file (with or without `.gz`) in `<root>/MNIST/raw/` (where torchvision puts them), `<root>/raw/`
and `<root>/` itself. `download_mnist` fetches them with torchvision for users who are online.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torchlab.data.facts import validate_digits
from torchlab.errors import DataError, UsageError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
MAGIC_KINDS = {IMAGE_MAGIC: "images", LABEL_MAGIC: "labels"}
IMAGE_SIDE = 28  # every MNIST image is 28 x 28 pixels
PIXEL_SCALE = 255.0


def read_idx(path: str | os.PathLike, kind: str | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (raw, or gzipped if the name ends in .gz) into an array.

    `kind` ("images" or "labels") is what the file must hold: its magic number is checked against it.
    Raises DataError naming the file when it cannot be read, has a wrong magic number, or
    holds fewer bytes than its header promises.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"MNIST file {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"MNIST file {path} is a folder; give the folder that holds the four files") from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"MNIST file {path} cannot be read ({type(exc).__name__}: {exc}); download it again") from None
    if len(data) < 4:
        raise DataError(f"MNIST file {path} is truncated ({len(data)} bytes, no IDX header); download it again")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    magic = struct.unpack(">I", data[:4])[0]
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 3:
        raise DataError(
            f"MNIST file {path} has magic number 0x{magic:08x}, not an IDX file of unsigned bytes "
            f"(0x{LABEL_MAGIC:08x} labels or 0x{IMAGE_MAGIC:08x} images); is it the right file?"
        )
    if kind is not None and MAGIC_KINDS.get(magic) != kind:
        seen = MAGIC_KINDS.get(magic, f"{ndim}-D data")
        wanted = IMAGE_MAGIC if kind == "images" else LABEL_MAGIC
        raise DataError(
            f"MNIST file {path} holds {seen}, not {kind}: its magic number is 0x{magic:08x}, "
            f"{kind} have 0x{wanted:08x}; are the images and labels files swapped?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"MNIST file {path} is truncated inside its header; download it again")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if kind == "images" and shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(
            f"MNIST file {path} declares {shape[1]}x{shape[2]} images; MNIST images are "
            f"{IMAGE_SIDE}x{IMAGE_SIDE}: the header is damaged or it is another data set"
        )
    expected = math.prod(shape)  # Python ints: a hostile header cannot overflow
    if len(data) - header < expected:
        raise DataError(
            f"MNIST file {path} is truncated: its header promises {'x'.join(map(str, shape))} = {expected:,} "
            f"values but it holds {len(data) - header:,}; download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape)


FOUND_NOWHERE = "pass --data-dir with the four MNIST files"
TRAIN_ADVICE = FOUND_NOWHERE + ", or add --download to fetch them"  # only `train` has --download


def find_file(root: str | os.PathLike, stem: str, advice: str = TRAIN_ADVICE) -> Path:
    """The path of MNIST file `stem` (raw or .gz) under `root`, in torchvision's layout or flat;
    `advice` ends the error when it is missing (the caller knows which flags it offers)."""
    root = Path(root)
    folders = [root / "MNIST" / "raw", root / "raw", root]
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise DataError(
        f"MNIST file {stem}[.gz] not found in {root} (looked in {', '.join(str(f) for f in folders)}); {advice}"
    )


def check_files(root: str | os.PathLike, advice: str = TRAIN_ADVICE) -> list[Path]:
    """The paths of all four MNIST files under `root`; DataError naming the first one missing."""
    return [find_file(root, stem, advice) for stems in FILES.values() for stem in stems]


def load_split(root: str | os.PathLike, split: str, advice: str = FOUND_NOWHERE) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels int64 (n,)) of the "train" or "test" split; `advice` as find_file's
    (the default, for evaluate and predict, does not offer train's --download)."""
    image_stem, label_stem = FILES[split]
    image_path, label_path = find_file(root, image_stem, advice), find_file(root, label_stem, advice)
    images, labels = read_idx(image_path, "images"), read_idx(label_path, "labels")
    if len(images) != len(labels):
        raise DataError(f"{image_path} has {len(images):,} images but {label_path} has {len(labels):,} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"MNIST file {label_path} has label {int(labels.max())}; digit labels run 0..9")
    return images, labels.astype(np.int64)


def download_mnist(root: str | os.PathLike) -> Path:
    """Fetch the four files with torchvision into `<root>/MNIST/raw/` (needs internet)."""
    from torchvision.datasets import MNIST

    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(
            f"downloading MNIST into {root} failed ({type(exc).__name__}: {exc}); copy the four IDX files there by hand"
        ) from None
    return Path(root) / "MNIST" / "raw"


def binary_targets(labels: np.ndarray, digits: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Keep the samples of two digits (a, b); the target is 1.0 for b ("is it the second digit?").

    Returns (boolean mask over `labels`, float32 targets of the kept samples).
    """
    a, b = digits
    keep = (labels == a) | (labels == b)
    return keep, (labels[keep] == b).astype(np.float32)


@dataclass
class MnistData:
    """Train and test splits as tensors: images float32 (n, 1, 28, 28) in [0, 1], targets.

    targets are int64 class indices (10 classes) or float32 0/1 (binary `digits` subset);
    `labels_*` keep the original digit of every sample for figures.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    labels_train: np.ndarray
    labels_test: np.ndarray
    digits: tuple[int, int] | None = None

    @property
    def classes(self) -> int:
        """1 (one logit: is it digits[1]?) or 10."""
        return 1 if self.digits else 10

    def class_names(self) -> list[str]:
        if self.digits:
            return [str(d) for d in self.digits]
        return [str(d) for d in range(10)]


def load_mnist(
    root: str | os.PathLike,
    digits: Sequence[int] | None = None,
    limit: int | None = None,
    download: bool = False,
) -> MnistData:
    """Load MNIST from `root`; optionally a binary subset of two `digits` and at most `limit` training samples."""
    pair = validate_digits(digits) if digits is not None else None
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    if download:
        download_mnist(root)
    splits: dict[str, tuple[torch.Tensor, torch.Tensor, np.ndarray]] = {}
    for split in ("train", "test"):
        images, labels = load_split(root, split, TRAIN_ADVICE)
        if pair is not None:
            keep, binary = binary_targets(labels, pair)
            images, labels = images[keep], labels[keep]
            targets = torch.from_numpy(binary)
        else:
            targets = torch.from_numpy(labels.copy())
        if split == "train" and limit is not None:
            images, labels, targets = images[:limit], labels[:limit], targets[:limit]
        x = torch.from_numpy(images.astype(np.float32) / PIXEL_SCALE).unsqueeze(1)
        splits[split] = (x, targets, labels)
    if len(splits["train"][0]) == 0:
        raise DataError(f"no training samples left after --digits {pair}")
    return MnistData(
        x_train=splits["train"][0],
        y_train=splits["train"][1],
        x_test=splits["test"][0],
        y_test=splits["test"][1],
        labels_train=splits["train"][2],
        labels_test=splits["test"][2],
        digits=pair,
    )


def normalization_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of every pixel of the training images (0.1307, 0.3081 for MNIST)."""
    x = x.double()
    return float(x.mean()), float(x.std())


def random_affine(
    images: torch.Tensor, generator: torch.Generator, shift: float = 2.0, degrees: float = 10.0, scale: float = 0.1
) -> torch.Tensor:
    """Move each image by up to `shift` pixels, turn it by up to `degrees` and zoom it by up to `scale`.

    One batched `grid_sample` on the images' device: no per-sample Python, so it costs little
    next to a training step. Pixels that come in from outside are the background (after
    normalization, the value of the image's corner).
    """
    n, _, height, width = images.shape
    device = images.device

    def uniform(bound: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator, device=device) * 2 - 1) * bound

    angle = uniform(degrees) * (torch.pi / 180)
    zoom = 1 + uniform(scale)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin, uniform(2 * shift / width)], dim=1),
            torch.stack([sin, cos, uniform(2 * shift / height)], dim=1),
        ],
        dim=1,
    )
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    background = images[:, :, :1, :1]
    moved = torch.nn.functional.grid_sample(images - background, grid.to(images.dtype), align_corners=False)
    return moved + background


def load_test_split(
    data_dir: str | os.PathLike, digits: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images (n, 1, 28, 28) in [0, 1] and targets; with `digits` (A, B) only those two, target 1 for B."""
    images, labels = load_split(data_dir, "test")
    x = torch.from_numpy(images.astype(np.float32) / PIXEL_SCALE).unsqueeze(1)
    if digits:
        keep = torch.from_numpy((labels == digits[0]) | (labels == digits[1]))
        return x[keep], torch.from_numpy((labels[keep.numpy()] == digits[1]).astype(np.int64))
    return x, torch.from_numpy(labels)
