"""Reading a user's image file into a gray array, with clear errors for anything unusable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from torchlab.errors import DataError


def load_gray(path: str | os.PathLike) -> np.ndarray:
    """Any image PIL can open (PNG, JPG, ..., gray, RGB, RGBA, palette) -> float32 (H, W) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the path of one image file")
    if not path.is_file():
        raise DataError(f"image {path} does not exist; check the path")
    try:
        with Image.open(path) as img:
            img = upright(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                # transparent pixels count as white paper
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path} is not a readable image ({type(exc).__name__}); use a PNG or JPG file") from None
    except Image.DecompressionBombError:
        raise DataError(f"{path} is too large to open safely; resize it first") from None
    if gray.ndim != 2 or gray.shape[0] < 1 or gray.shape[1] < 1:
        raise DataError(f"{path} has no pixels")
    return gray


def upright(img: "Image.Image") -> "Image.Image":
    """The image as a viewer shows it: turned by its EXIF orientation tag (phone photos), pixels loaded."""
    from PIL import ImageOps

    img.load()
    return ImageOps.exif_transpose(img)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3), turned upright like `load_gray` (for drawing on it)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(upright(img).convert("RGB"))


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Make the strokes bright on a dark background (MNIST and the digits set draw them so)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 1.0 - gray if np.median(border) > 0.5 else gray


def resize(gray: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaging resize of a float image (values kept in their range)."""
    from PIL import Image

    img = Image.fromarray(np.clip(gray * 255.0, 0, 255).astype(np.uint8))
    out = img.resize((width, height), Image.Resampling.BOX if min(gray.shape) >= max(height, width) else Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float32) / 255.0


def crop_to_ink(gray: np.ndarray, threshold: float = 0.2, margin: float = 0.0) -> np.ndarray:
    """The smallest square (plus `margin` as a fraction of its side) that holds every bright pixel."""
    rows = np.where(gray.max(axis=1) > threshold)[0]
    cols = np.where(gray.max(axis=0) > threshold)[0]
    if rows.size == 0 or cols.size == 0:
        raise DataError("the image is blank (no strokes found); draw a digit with clear contrast")
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = max(r1 - r0, c1 - c0)
    side = int(np.ceil(side * (1 + 2 * margin)))
    square = np.zeros((side, side), dtype=gray.dtype)
    top = (side - (r1 - r0)) // 2
    left = (side - (c1 - c0)) // 2
    square[top : top + r1 - r0, left : left + c1 - c0] = gray[r0:r1, c0:c1]
    return square
