"""Synthetic MNIST IDX files for tests: ten easy classes, gzipped or raw, flat or in torchvision's layout."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = magic if magic is not None else 0x0800 + array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten easy classes: digit d is a bright bar at row 2 + 2d with a little noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28))
    for i, d in enumerate(labels):
        images[i, 2 + 2 * d : 4 + 2 * d, 4:24] = 250
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_mnist(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True, layout: str = "flat") -> Path:
    """The four MNIST files of a synthetic set, gzipped or raw, flat or in torchvision's MNIST/raw/."""
    target = folder / "MNIST" / "raw" if layout == "torchvision" else folder
    target.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            name = f"{prefix}-{kind}"
            data = idx_bytes(array)
            if gz:
                (target / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (target / name).write_bytes(data)
    return folder
