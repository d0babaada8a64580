"""Facts about the data that the task configs check without torch: flip sums, crops, digit pairs, radii.

The data modules (keypoints, patch, mnist, ring) and models/keypoints.py use them, and so do the
configs in tasks/*/config.py, which must not import torch (`torchlab train TASK --help` answers
without it); so they live here, below both, in a module that imports only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torchlab.errors import DataError, UsageError

# ------------------------------------------------------------------ keypoints
FLIP_SUM = 95.0  # a horizontal flip maps x to 95 - x: pixel-centered coordinates of a 96-pixel face
# The mirror of the development faces' labels (../shared/data/faces): a net trained without flips, shown the mirror
# images of the 3,106 training faces, puts (label x + flipped-back x) at 97.35 px on average, not 95
# (tools/mirror_constant.py, BENCHMARKS.md). A run on a CSV measures its own faces' mirror the same way
# (tasks/keypoints/mirror.py) instead of assuming this value.
KAGGLE_FLIP_SUM = 97.35
HEADS = ("heatmap-24", "heatmap-48", "regression")  # keypoint-net's read-outs (models/keypoints.py)

# ---------------------------------------------------------------------- patch
# A smooth, shaded region of the default photo: Grace Hopper's forehead, under the cap.
DEFAULT_ROW, DEFAULT_COL, DEFAULT_SIZE = 144, 256, 32


# ---------------------------------------------------------------------- mnist
def validate_digits(digits: Sequence[int]) -> tuple[int, int]:
    """Two different digits 0..9, or a UsageError saying what --digits wants."""
    digits = tuple(int(d) for d in digits)
    if len(digits) != 2 or digits[0] == digits[1] or not all(0 <= d <= 9 for d in digits):
        raise UsageError(f"--digits takes two different digits 0..9 (e.g. --digits 4 5), got {list(digits)}")
    return digits


# ----------------------------------------------------------------------- ring
RADIUS_LIMIT = 1e6  # the nets compute in float32 (7 digits): larger radii, squared areas and boxes lose the ring


def check_radii(a: float, b: float) -> None:
    """A ring needs 0 <= a < b <= RADIUS_LIMIT."""
    if not (math.isfinite(a) and math.isfinite(b) and 0.0 <= a < b):
        raise DataError(f"a ring needs 0 <= a < b, got a={a:g}, b={b:g}")
    if b > RADIUS_LIMIT:
        raise DataError(f"a ring needs b <= {RADIUS_LIMIT:g} (the nets compute in float32), got b={b:g}")
