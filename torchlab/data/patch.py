"""Gray patches for the linear patch regressor: a synthetic ramp or a crop of a photo.

A patch is a (size, size) float array of brightness in 0..255. `design_matrix` turns it
into one row [1, x, y] per pixel (x = column, y = row, row by row) and the targets.
`PatchScaling` maps x, y and brightness to [0, 1] (the seed's remedy for hard tuning)
and converts weights learned on that scale back to gray levels per pixel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torchlab.data.facts import DEFAULT_COL, DEFAULT_ROW, DEFAULT_SIZE
from torchlab.errors import DataError


def default_photo() -> Path:
    """The real photo matplotlib ships (grace_hopper.jpg, 512 x 600 pixels)."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def ramp_patch(
    size: int = 32,
    intercept: float = 80.0,
    slope_x: float = 1.2,
    slope_y: float = 0.8,
    noise: float = 2.0,
    seed: int = 0,
) -> np.ndarray:
    """intercept + slope_x*x + slope_y*y + N(0, noise^2), clipped to [0, 255]; shape (size, size)."""
    if size < 2:
        raise DataError(f"the patch size must be at least 2 pixels, got {size}")
    if noise < 0:
        raise DataError(f"the noise level must be >= 0, got {noise}")
    ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    rng = np.random.default_rng(seed)
    grid = intercept + slope_x * xs + slope_y * ys + rng.normal(0.0, noise, size=(size, size))
    return np.clip(grid, 0.0, 255.0)


def photo_patch(
    path: str | os.PathLike | None = None, row: int = DEFAULT_ROW, col: int = DEFAULT_COL, size: int = DEFAULT_SIZE
) -> np.ndarray:
    """The gray (size, size) crop whose top-left pixel is (row, col); brightness 0..255."""
    from torchlab.data.images import load_gray

    path = default_photo() if path is None else Path(path)
    if size < 2:
        raise DataError(f"--size must be at least 2 pixels, got {size}")
    gray = load_gray(path) * 255.0
    height, width = gray.shape
    if row < 0 or col < 0 or row + size > height or col + size > width:
        raise DataError(
            f"a {size}x{size} crop at row {row}, col {col} does not fit in {path.name} "
            f"({height} rows x {width} columns); "
            f"pick --row in 0..{max(height - size, 0)} and --col in 0..{max(width - size, 0)}"
        )
    return gray[row : row + size, col : col + size].astype(np.float64)


def design_matrix(patch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One row [1, x, y] per pixel (row by row) and its brightness: X (H*W, 3), I (H*W,), float64."""
    height, width = patch.shape
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    rows = np.stack([np.ones(height * width), xs.ravel(), ys.ravel()], axis=1)
    return torch.from_numpy(rows), torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float64).ravel())


@dataclass(frozen=True)
class PatchScaling:
    """x, y are divided by `coord`, brightness by `brightness` (1, 1 = original units)."""

    coord: float = 1.0
    brightness: float = 1.0

    @classmethod
    def unit(cls, size: int) -> PatchScaling:
        """Map x, y in 0..size-1 and brightness in 0..255 to [0, 1]."""
        return cls(coord=float(size - 1), brightness=255.0)

    def apply(self, rows: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled copies of the design matrix and the targets."""
        factors = torch.tensor([1.0, 1.0 / self.coord, 1.0 / self.coord], dtype=rows.dtype, device=rows.device)
        return rows * factors, targets / self.brightness

    def to_original(self, weights: torch.Tensor) -> torch.Tensor:
        """Weights learned on the scaled problem, in gray levels (w0) and gray levels per pixel (w1, w2)."""
        factors = torch.tensor([1.0, 1.0 / self.coord, 1.0 / self.coord], dtype=weights.dtype, device=weights.device)
        return weights * factors * self.brightness
