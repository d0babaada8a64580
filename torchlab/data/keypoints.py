"""The Kaggle Facial Keypoints CSV files, read fast and checked row by row.

training.csv: 30 coordinate columns (x, y of 15 keypoints, in Kaggle's order) and `Image`,
96*96 = 9,216 space-separated gray levels 0..255. Many coordinates are missing (empty).
test.csv: `ImageId`, `Image`. IdLookupTable.csv: `RowId`, `ImageId`, `FeatureName`, `Location`.

Pixel convention: pixel column j of an image is centered at x = j (row i at y = i), as in
the seed's plots (matplotlib's imshow draws it so). A horizontal flip therefore maps
x -> 95 - x (`FLIP_SUM`) and swaps every left/right keypoint pair.

Image strings are parsed as whole numbers (int32), which NumPy does about ten times faster
than the floats the seed parses; a row that is not plain whole numbers falls back to a
careful parser, so every malformed row is named in the error.
"""

from __future__ import annotations

import lzma
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torchlab.data.facts import FLIP_SUM  # noqa: F401  (x -> 95 - x: IMAGE_SIZE - 1; imported from here)
from torchlab.errors import DataError

IMAGE_SIZE = 96
PIXELS = IMAGE_SIZE * IMAGE_SIZE

KEYPOINT_NAMES = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)
COORD_COLUMNS = tuple(f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in ("x", "y"))
# The keypoints (almost) every Kaggle row has; the other eleven are labeled in ~30% of rows.
ALWAYS_PRESENT = ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")

# Split of the complete rows used by the seed: train_test_split(test_size=0.1, random_state=42).
SPLIT_FRACTION = 0.1
SPLIT_SEED = 42


def flip_permutation() -> list[int]:
    """For each keypoint, the index of its mirror image (left <-> right); the nose and lip centers map to themselves."""

    def mirror(name: str) -> str:
        return name.replace("left", "@").replace("right", "left").replace("@", "right")

    return [KEYPOINT_NAMES.index(mirror(name)) for name in KEYPOINT_NAMES]


@dataclass
class KeypointTable:
    """A training file in memory: gray images (uint8) and coordinates with NaN where unlabeled."""

    images: np.ndarray  # (n, 96, 96) uint8
    keypoints: np.ndarray  # (n, 30) float32, NaN = missing, columns in COORD_COLUMNS order
    source: str = ""

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labeled(self) -> np.ndarray:
        """(n, 30) bool: a coordinate counts only when both x and y of its keypoint are present."""
        present = ~np.isnan(self.keypoints)
        both = present[:, 0::2] & present[:, 1::2]
        return np.repeat(both, 2, axis=1)

    @property
    def complete(self) -> np.ndarray:
        """(n,) bool: rows with all 15 keypoints (the seed keeps only these)."""
        return np.asarray(self.labeled.all(axis=1))


# ------------------------------------------------------------------------ reading
def read_training_csv(path: str | os.PathLike) -> KeypointTable:
    """Read and validate a Kaggle-format training.csv; DataError names the first bad row."""
    frame = _read_csv(path)
    missing = [c for c in COORD_COLUMNS if c not in frame.columns]
    if "Image" not in frame.columns:
        raise DataError(
            f"{path} has no 'Image' column; a keypoints training file needs the 30 coordinate columns and Image"
        )
    if missing:
        raise DataError(
            f"{path} lacks coordinate column(s) {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; "
            "use Kaggle's training.csv layout"
        )
    keypoints = _parse_coordinates(frame, path)
    images = parse_images(frame["Image"].tolist(), path)
    return KeypointTable(images, keypoints, str(path))


def read_test_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read Kaggle's test.csv: (image ids as int64, images (n, 96, 96) uint8)."""
    frame = _read_csv(path)
    for column in ("ImageId", "Image"):
        if column not in frame.columns:
            raise DataError(f"{path} has no '{column}' column; a keypoints test file has ImageId and Image")
    ids = _integer_column(frame, "ImageId", path)
    return ids, parse_images(frame["Image"].tolist(), path)


def read_lookup_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read IdLookupTable.csv: (RowId, ImageId, FeatureName) for every value Kaggle asks for."""
    frame = _read_csv(path)
    for column in ("RowId", "ImageId", "FeatureName"):
        if column not in frame.columns:
            raise DataError(f"{path} has no '{column}' column; pass Kaggle's IdLookupTable.csv to --submission")
    names = frame["FeatureName"].fillna("").astype(str).tolist()
    for row, name in enumerate(names):
        if name not in COORD_COLUMNS:
            raise DataError(f"{path} row {row + 1}: FeatureName {name!r} is not one of the 30 keypoint coordinates")
    return _integer_column(frame, "RowId", path), _integer_column(frame, "ImageId", path), names


def _read_csv(path: str | os.PathLike):
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the path of one CSV file (such as training.csv)")
    if not path.is_file():
        raise DataError(f"{path} does not exist; download the Kaggle files into data/ or pass --data PATH")
    try:
        # Everything as text: numbers are checked below, where a bad one can be named by its row.
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], engine="c")
    except pd.errors.EmptyDataError:  # before ValueError, of which it is a subclass
        raise DataError(f"{path} is empty; it needs a header line and one row per image") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:160]
        raise DataError(f"{path} is not a readable CSV file ({detail})") from None
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        # a compressed file (.gz, .bz2, .xz, .zip) cut short or damaged: gzip's CRC error is an OSError
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise DataError(
            f"{path} is truncated or damaged ({type(exc).__name__}: {detail}); download or copy it again"
        ) from None


def _integer_column(frame, column: str, path) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | (values.to_numpy() % 1 != 0))
    if bad.size:
        row = int(bad[0])
        raise DataError(f"{path} row {row + 1}: {column} {frame[column].iloc[row]!r} is not a whole number")
    return values.to_numpy().astype(np.int64)


def _parse_coordinates(frame, path) -> np.ndarray:
    import pandas as pd

    text = frame[list(COORD_COLUMNS)]
    values = text.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.argwhere(np.isnan(values) & text.notna().to_numpy() | np.isinf(values))
    if bad.size:
        row, col = map(int, bad[0])
        raise DataError(f"{path} row {row + 1}: {COORD_COLUMNS[col]} = {text.iat[row, col]!r} is not a number")
    outside = np.argwhere((values < 0) | (values >= IMAGE_SIZE))
    if outside.size:
        row, col = map(int, outside[0])
        raise DataError(
            f"{path} row {row + 1}: {COORD_COLUMNS[col]} = {values[row, col]:g} lies outside the image "
            f"[0, {IMAGE_SIZE}); coordinates are pixels of the 96x96 image"
        )
    return values.astype(np.float32)


# ------------------------------------------------------------------ image strings
def parse_images(strings: list, path: str | os.PathLike = "data") -> np.ndarray:
    """Space-separated gray-level strings -> (n, 96, 96) uint8, checking count and range per row.

    Kaggle's gray levels are whole numbers, and NumPy reads whole numbers about ten times
    faster than floats, so each row is parsed as int32 (the seed parses floats). A row that
    is not plain whole numbers goes to the careful parser, which says what is wrong with it.
    """
    out = np.empty((len(strings), PIXELS), dtype=np.uint8)
    for row, text in enumerate(strings):
        if not isinstance(text, str):
            raise DataError(f"{path} row {row + 1}: the Image value is empty; it needs {PIXELS} gray levels")
        try:
            values = np.fromstring(text, sep=" ", dtype=np.int32)
        except ValueError:  # something other than whole numbers and blanks
            values = None
        if values is None or values.size != PIXELS or values.min() < 0 or values.max() > 255:
            values = _parse_one(text, path, row)
        out[row] = values
    return out.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def _parse_one(text: str, path, row: int) -> np.ndarray:
    """The careful per-row parser: any number format, every failure named."""
    tokens = text.split()
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise DataError(f"{path} row {row + 1}: Image holds {bad[:20]!r}, which is not a number") from None
    if len(tokens) != PIXELS:
        raise DataError(f"{path} row {row + 1}: Image has {len(tokens)} gray levels, expected {PIXELS} (a 96x96 image)")
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 255:
        raise DataError(
            f"{path} row {row + 1}: Image holds gray levels outside 0..255 (min {values.min():g}, max {values.max():g})"
        )
    return np.rint(values).astype(np.uint8)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------ writing
def format_training_csv(images: np.ndarray, keypoints: np.ndarray) -> str:
    """The text of a Kaggle-format training.csv (NaN -> empty cell); used by the synthetic generator."""
    lines = [",".join(COORD_COLUMNS + ("Image",))]
    pixels = images.reshape(len(images), -1)
    for row, coords in enumerate(keypoints):
        cells = ["" if np.isnan(v) else f"{v:.6f}" for v in coords]
        lines.append(",".join(cells) + "," + " ".join(map(str, pixels[row].tolist())))
    return "\n".join(lines) + "\n"


def format_test_csv(images: np.ndarray, first_id: int = 1) -> str:
    """The text of a Kaggle-format test.csv (ImageId, Image)."""
    pixels = images.reshape(len(images), -1)
    lines = ["ImageId,Image"] + [f"{first_id + i}," + " ".join(map(str, p.tolist())) for i, p in enumerate(pixels)]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------- selection
def seed_split(
    n_complete: int, fraction: float = SPLIT_FRACTION, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions among the complete rows, exactly as the seed's train_test_split makes them."""
    from sklearn.model_selection import train_test_split

    if n_complete < 2:
        raise DataError(f"only {n_complete} row(s) have all 15 keypoints; at least 2 are needed for a validation split")
    train, val = train_test_split(np.arange(n_complete), test_size=fraction, random_state=seed)
    return np.asarray(train), np.asarray(val)


@dataclass
class KeypointSplit:
    """Rows for training and validation, with their masks of labeled coordinates."""

    train: np.ndarray  # row indices into the table
    val: np.ndarray


def split_rows(table: KeypointTable, missing: str) -> KeypointSplit:
    """The seed's validation rows (10% of the complete rows, random_state=42) and the training rows.

    missing="drop": train on the other complete rows only (the seed).
    missing="mask": also train on every incomplete row that has at least one keypoint.
    Either way the validation set is the same, so runs with both settings compare directly.
    """
    if missing not in ("drop", "mask"):
        raise DataError(f"--missing must be 'drop' or 'mask', got {missing!r}")
    complete = np.flatnonzero(table.complete)
    train_pos, val_pos = seed_split(len(complete))
    train = complete[train_pos]
    if missing == "mask":
        partial = np.flatnonzero(~table.complete & table.labeled.any(axis=1))
        train = np.sort(np.concatenate([train, partial]))
    return KeypointSplit(train=train, val=complete[val_pos])


PIXEL_SCALE = 255.0  # gray levels 0..255 -> inputs in [0, 1]


SYNTHETIC_SEED = 0


# Memory a training run holds per face: the uint8 table, the float32 training tensors and the copies
# made on the way (measured peak: 67.6 KB per face for 20,000 synthetic faces); on a GPU the float32 tensors.
FACE_BYTES = 70_000


DEVICE_FACE_BYTES = 4 * PIXELS + 2 * 4 * len(COORD_COLUMNS)


def to_tensors(table: KeypointTable, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images (n, 1, 96, 96) in [0, 1], keypoints (n, 30) with 0 where unlabeled, mask (n, 30))."""
    images = torch.from_numpy(table.images[rows]).float().div_(PIXEL_SCALE).unsqueeze(1)
    mask = torch.from_numpy(table.labeled[rows]).float()
    keypoints = torch.from_numpy(np.nan_to_num(table.keypoints[rows])) * mask
    return images, keypoints, mask


def named_points(points: np.ndarray) -> dict[str, dict[str, float]]:
    """(15, 2) or (30,) coordinates -> {keypoint name: {"x": x, "y": y}}."""
    pairs = np.asarray(points, dtype=np.float64).reshape(len(KEYPOINT_NAMES), 2)
    return {name: {"x": float(x), "y": float(y)} for name, (x, y) in zip(KEYPOINT_NAMES, pairs)}
