"""scikit-learn's bundled 8x8 digits (1,797 images, gray levels 0..16), as tensors."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PIXEL_SCALE = 16.0  # the data set's gray levels run 0..16; the seed divides by 16
SPLIT_SEED = 42
TEST_FRACTION = 0.2


@dataclass
class DigitsSplit:
    """The seed's 80/20 holdout split: inputs scaled to [0, 1], integer labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    images_test: np.ndarray  # (n, 8, 8) on the original 0..16 scale, for figures


def load_digits_split(test_size: float = TEST_FRACTION, random_state: int = SPLIT_SEED) -> DigitsSplit:
    """Load the digits and split them exactly as the seed does (train_test_split, random_state=42)."""
    x, y = load_digits_arrays()
    train, test = holdout_indices(len(y), test_size, random_state)
    x_train, x_test, y_train, y_test = x[train], x[test], y[train], y[test]
    return DigitsSplit(
        x_train=torch.from_numpy(x_train / PIXEL_SCALE).float(),
        y_train=torch.from_numpy(y_train).long(),
        x_test=torch.from_numpy(x_test / PIXEL_SCALE).float(),
        y_test=torch.from_numpy(y_test).long(),
        images_test=x_test.reshape(-1, 8, 8),
    )


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 64) gray levels and labels, read from the file scikit-learn ships.

    Reading the file directly skips importing sklearn.datasets (about 1.5 s of a 9 s demo);
    the values equal `sklearn.datasets.load_digits(return_X_y=True)` (a test checks it).
    """
    spec = importlib.util.find_spec("sklearn")
    locations = spec.submodule_search_locations if spec else None
    path = Path(locations[0]) / "datasets" / "data" / "digits.csv.gz" if locations else None
    if path is None or not path.is_file():  # another layout: ask scikit-learn itself
        from sklearn.datasets import load_digits

        return load_digits(return_X_y=True)
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int)


def holdout_indices(n: int, test_size: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices of sklearn's train_test_split(shuffle=True, random_state=...).

    Its ShuffleSplit draws one permutation from RandomState(random_state): the first
    ceil(test_size * n) rows are the test split, the next n - that are the training split.
    """
    n_test = math.ceil(test_size * n)
    permutation = np.random.RandomState(random_state).permutation(n)
    return permutation[n_test:], permutation[:n_test]


def shift_images(x: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Move each flattened 8x8 image by up to `max_shift` pixels in x and y (zero fill)."""
    n = x.shape[0]
    images = x.view(n, 1, 8, 8)
    pad = torch.nn.functional.pad(images, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator, device=x.device)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator, device=x.device)
    rows = dy[:, None] + torch.arange(8, device=x.device)[None, :]  # (n, 8)
    cols = dx[:, None] + torch.arange(8, device=x.device)[None, :]
    out = pad[torch.arange(n, device=x.device)[:, None, None], 0, rows[:, :, None], cols[:, None, :]]
    return out.reshape(n, 64)
