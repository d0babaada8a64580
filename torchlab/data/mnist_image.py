"""A photo or drawing of one digit -> a 28x28 image prepared the way MNIST's digits were.

MNIST's digits were scaled to fit a 20x20 box (keeping their aspect ratio) and placed in the
28x28 frame so that their center of mass sits in the middle. We do the same after making the
ink bright on black and cropping to it.
"""

from __future__ import annotations

import os

import numpy as np

from torchlab.data.images import crop_to_ink, ink_on_black, load_gray, resize

SIZE = 28
BOX = 20


def center_by_mass(digit: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Place `digit` (at most size x size) in a size x size frame with its center of mass in the middle."""
    frame = np.zeros((size, size), dtype=np.float32)
    h, w = digit.shape
    total = float(digit.sum())
    if total > 0:
        rows, cols = np.indices(digit.shape)
        cy, cx = float((rows * digit).sum() / total), float((cols * digit).sum() / total)
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    top = int(np.clip(round((size - 1) / 2 - cy), 0, size - h))
    left = int(np.clip(round((size - 1) / 2 - cx), 0, size - w))
    frame[top : top + h, left : left + w] = digit
    return frame


def image_to_mnist(path: str | os.PathLike) -> np.ndarray:
    """(28, 28) float32 in [0, 1], bright strokes on black, from any image file of one digit."""
    gray = ink_on_black(load_gray(path))
    square = crop_to_ink(gray)
    digit = resize(square, BOX, BOX)
    digit = digit / max(float(digit.max()), 1e-6)
    return center_by_mass(digit)
