"""A photo or drawing of one digit -> the 8x8, 0..16 representation of scikit-learn's digits."""

from __future__ import annotations

import os

import numpy as np

from torchlab.data.digits import PIXEL_SCALE
from torchlab.data.images import crop_to_ink, ink_on_black, load_gray, resize


def image_to_digit_features(path: str | os.PathLike) -> np.ndarray:
    """(64,) float array on the 0..16 scale, laid out like `load_digits().data` rows.

    The digits set was made from 32x32 bitmaps counted in 4x4 blocks, with the digit filling
    most of the box; we do the same: bright ink, cropped to its bounding square, 32x32, block sums.
    """
    gray = ink_on_black(load_gray(path))
    square = crop_to_ink(gray)
    big = resize(square, 32, 32)
    blocks = big.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    blocks = blocks / max(blocks.max(), 1e-6)
    return (blocks * PIXEL_SCALE).reshape(64).astype(np.float32)
