"""Reading a user's image file into a gray array, with clear errors for anything unusable."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from torchlab.errors import DataError

if TYPE_CHECKING:  # Pillow is imported lazily at run time (an optional, slow import)
    from PIL import Image

# Bytes a photo's pixel costs on the way through torchlab (decoded RGBA, the float gray copy, the face crops,
# the overlay figure): measured 57 per pixel for keypoint predict --out on a 6000x6000 photo, so 64 with a margin.
PHOTO_BYTES_PER_PIXEL = 64
PILLOW_PIXEL_LIMIT = 89_478_485  # Pillow's own MAX_IMAGE_PIXELS: it only warns above it; torchlab refuses


def pixel_limit() -> int:
    """The most pixels torchlab decodes from one image: the memory budget over PHOTO_BYTES_PER_PIXEL, at most
    Pillow's default limit."""
    from torchlab.runtime.guards import memory_budget

    budget = memory_budget("cpu")
    return PILLOW_PIXEL_LIMIT if budget is None else max(1, min(PILLOW_PIXEL_LIMIT, budget // PHOTO_BYTES_PER_PIXEL))


@contextlib.contextmanager
def bounded_decoding(path: Path) -> Iterator[None]:
    """Decode images with Pillow's MAX_IMAGE_PIXELS set to `pixel_limit()`; an image over it (Pillow's
    DecompressionBombWarning or Error) is a one-line DataError naming the file, its size and the limit."""
    from PIL import Image

    limit, saved = pixel_limit(), Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as img:  # reads the header only
            width, height = img.size
        raise DataError(
            f"{path} is {width:,}x{height:,} pixels ({width * height:,}), over the {limit:,} pixels "
            f"torchlab decodes within its memory budget ({PHOTO_BYTES_PER_PIXEL} bytes a pixel); "
            "resize it first"
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def load_gray(path: str | os.PathLike) -> np.ndarray:
    """Any image PIL can open (PNG, JPG, ..., gray, RGB, RGBA, palette) -> float32 (H, W) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the path of one image file")
    if not path.is_file():
        raise DataError(f"image {path} does not exist; check the path")
    try:
        with bounded_decoding(path), Image.open(path) as img:
            img = upright(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                # transparent pixels count as white paper
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path} is not a readable image ({type(exc).__name__}); use a PNG or JPG file") from None
    if gray.ndim != 2 or gray.shape[0] < 1 or gray.shape[1] < 1:
        raise DataError(f"{path} has no pixels")
    return gray


def upright(img: Image.Image) -> Image.Image:
    """The image as a viewer shows it: turned by its EXIF orientation tag (phone photos), pixels loaded."""
    from PIL import ImageOps

    img.load()
    return ImageOps.exif_transpose(img)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3), turned upright like `load_gray` (for drawing on it)."""
    from PIL import Image

    with bounded_decoding(Path(path)), Image.open(path) as img:
        return np.asarray(upright(img).convert("RGB"))


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Make the strokes bright on a dark background (MNIST and the digits set draw them so)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 1.0 - gray if np.median(border) > 0.5 else gray


def resize(gray: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaging resize of a float image (values kept in their range)."""
    from PIL import Image

    img = Image.fromarray(np.clip(gray * 255.0, 0, 255).astype(np.uint8))
    out = img.resize(
        (width, height), Image.Resampling.BOX if min(gray.shape) >= max(height, width) else Image.Resampling.BILINEAR
    )
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
