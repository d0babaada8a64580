"""Synthetic 96x96 gray faces with exact keypoints, in the Kaggle CSV format.

Each face is drawn from its geometry: the 15 keypoints (placed from an average face, then
jittered per feature, turned a little left/right, rolled, scaled and moved) and a few style
numbers (tones, sizes, light). Eyes are a white ellipse between the two corners with a dark
iris at the eye center; brows are thick strokes between their two ends; the nose tip sits
between two nostrils; the lips run from corner to corner through the top- and bottom-lip
points. A smooth texture and pixel noise go on top.

Pixels are centered on whole coordinates (column j at x = j), as in the Kaggle data, so
`mirror_geometry` (x -> 95 - x, left <-> right) draws exactly the flipped image.

Missing labels follow Kaggle's pattern: about 30% of rows keep all 15 keypoints, the rest
keep only the four that Kaggle labels almost everywhere (eye centers, nose tip, bottom lip).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from torchlab.data.keypoints import (
    ALWAYS_PRESENT,
    FACE_BYTES,
    FLIP_SUM,
    IMAGE_SIZE,
    KEYPOINT_NAMES,
    SYNTHETIC_SEED,
    KeypointTable,
    flip_permutation,
    format_test_csv,
    format_training_csv,
    read_training_csv,
)
from torchlab.runtime.files import atomic_write_text
from torchlab.runtime.guards import check_memory

# An average upright face (pixels, image center near (48, 50)), keypoints in Kaggle's order.
TEMPLATE = np.array(
    [
        [66.0, 38.0],
        [30.0, 38.0],  # eye centers (left = the person's left = right of the image)
        [59.0, 38.5],
        [73.0, 38.5],
        [37.0, 38.5],
        [23.0, 38.5],  # eye corners: left inner/outer, right inner/outer
        [56.0, 29.0],
        [79.0, 30.0],
        [40.0, 29.0],
        [17.0, 30.0],  # brows: left inner/outer, right inner/outer
        [48.0, 60.0],  # nose tip
        [63.0, 76.0],
        [33.0, 76.0],
        [48.0, 72.5],
        [48.0, 79.0],  # mouth corners, top lip, bottom lip
    ],
    dtype=np.float64,
)
CENTER = np.array([48.0, 50.0])
# How far each keypoint moves sideways when the head turns (nose most, outer points least).
DEPTH = np.array([2, 2, 2.5, 1, 2.5, 1, 2, 0.5, 2, 0.5, 7, 2, 2, 3.5, 3], dtype=np.float64)
COMPLETE_FRACTION = 0.3
CHUNK = 256
_STYLE_KEYS = (
    "head_cx",
    "head_cy",
    "head_a",
    "head_b",
    "roll",
    "skin",
    "hair",
    "hairline",
    "background",
    "light",
    "iris",
    "sclera",
    "brow",
    "lips",
    "contrast",
    "noise",
)


def sample_geometry(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random keypoints (n, 15, 2) and style numbers for n faces; `render_faces` draws them."""
    local = np.repeat((TEMPLATE - CENTER)[None], n, axis=0)
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    eyes, brows, mouth = [0, 1, 2, 3, 4, 5], [6, 7, 8, 9], [11, 12, 13, 14]
    local[:, eyes, 0] *= u(0.9, 1.1)[:, None]  # eye spacing
    for center, corners in ((0, [2, 3]), (1, [4, 5])):  # eye width around each center
        c = local[:, [center], :]
        local[:, corners, 0] = c[..., 0] + (local[:, corners, 0] - c[..., 0]) * u(0.8, 1.2)[:, None]
    gaze = np.stack([u(-1.5, 1.5), u(-0.7, 0.7)], axis=1)
    local[:, [0, 1], :] += gaze[:, None, :]
    local[:, brows, 1] += u(-3.0, 2.0)[:, None]  # brows raised or lowered
    local[:, 10, 1] *= u(0.85, 1.15)  # nose length
    local[:, [11, 12], 0] *= u(0.85, 1.2)[:, None]  # mouth width
    local[:, [11, 12], 1] -= u(-1.5, 3.0)[:, None]  # smile lifts the corners
    local[:, 13, 1] -= u(0.0, 1.0)
    local[:, 14, 1] += u(0.0, 5.0)  # mouth opening
    local[:, mouth, 1] += u(-2.0, 2.0)[:, None]
    local[:, :, 0] += u(-1.0, 1.0)[:, None] * DEPTH[None]  # head turned left/right
    scale, roll = u(0.85, 1.12), np.clip(rng.normal(0.0, 0.1, n), -0.26, 0.26)
    shift = np.stack([u(-5, 5), u(-5, 5)], axis=1)
    keypoints = _place(local, scale, roll, CENTER + shift)
    head_center = _place(np.array([[[0.0, 3.0]]]).repeat(n, 0), scale, roll, CENTER + shift)[:, 0]
    geometry = {
        "keypoints": keypoints,
        "head_cx": head_center[:, 0],
        "head_cy": head_center[:, 1],
        "head_a": scale * u(33, 38),
        "head_b": scale * u(42, 48),
        "roll": roll,
        "skin": u(0.35, 0.8),
        "hair": u(0.03, 0.6),
        "hairline": scale * u(28, 36),
        "background": u(0.05, 0.95),
        "light": u(-0.15, 0.15),
        "iris": scale * u(2.4, 3.4),
        "sclera": u(0.32, 0.45),
        "brow": scale * u(1.2, 2.0),
        "lips": u(0.1, 0.3),
        "contrast": u(0.7, 1.2),
        "noise": u(0.005, 0.04),
    }
    geometry["texture"] = (
        _smooth_texture(n, rng) * u(0.02, 0.08)[:, None, None]
        + rng.normal(0.0, 1.0, (n, IMAGE_SIZE, IMAGE_SIZE)) * geometry["noise"][:, None, None]
    )
    return geometry


def _place(local: np.ndarray, scale: np.ndarray, roll: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Rotate by roll, scale and move face-local points (n, k, 2) into the image."""
    c, s = np.cos(roll)[:, None], np.sin(roll)[:, None]
    x, y = local[..., 0], local[..., 1]
    rx, ry = c * x - s * y, s * x + c * y
    return np.stack([rx, ry], axis=-1) * scale[:, None, None] + center[:, None, :]


def _smooth_texture(n: int, rng: np.random.Generator) -> np.ndarray:
    coarse = torch.from_numpy(rng.normal(0.0, 1.0, (n, 1, 8, 8)))
    fine = torch.nn.functional.interpolate(coarse, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", align_corners=True)
    return fine[:, 0].numpy()


def mirror_geometry(geometry: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same faces seen in a mirror: x -> 95 - x, left and right keypoints swapped, roll and light negated."""
    out = {k: v.copy() for k, v in geometry.items()}
    keypoints = geometry["keypoints"][:, flip_permutation()].copy()
    keypoints[..., 0] = FLIP_SUM - keypoints[..., 0]
    out["keypoints"] = keypoints
    out["head_cx"] = FLIP_SUM - geometry["head_cx"]
    out["roll"] = -geometry["roll"]
    out["light"] = -geometry["light"]
    out["texture"] = geometry["texture"][:, :, ::-1].copy()
    return out


# ------------------------------------------------------------------------ drawing
def _inside(distance: np.ndarray) -> np.ndarray:
    """Coverage of a pixel by a shape, from a signed distance in pixels (negative inside), 1-pixel soft edge."""
    return np.clip(0.5 - distance, 0.0, 1.0)


def _ellipse(x, y, cx, cy, a, b, angle) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u = (x - cx) * c + (y - cy) * s
    v = -(x - cx) * s + (y - cy) * c
    return _inside((np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * np.minimum(a, b))


def _stroke(x, y, p, q, half_width) -> np.ndarray:
    """A thick line from point p to point q (arrays (n, 2)), with round ends."""
    px, py, qx, qy = (a[:, None, None] for a in (p[:, 0], p[:, 1], q[:, 0], q[:, 1]))
    dx, dy = qx - px, qy - py
    t = np.clip(((x - px) * dx + (y - py) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    return _inside(np.hypot(x - px - t * dx, y - py - t * dy) - half_width)


def _paint(image: np.ndarray, coverage: np.ndarray, tone) -> np.ndarray:
    return image * (1.0 - coverage) + tone * coverage


def _mouth(x, y, left, right, top, bottom) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of the lips and of the dark line between them: curves from corner to corner through the lip centers."""
    mid = (left + right) / 2.0
    axis = right - left
    half = np.linalg.norm(axis, axis=1) / 2.0
    ux, uy = axis[:, 0] / (2 * half), axis[:, 1] / (2 * half)
    nx, ny = -uy, ux  # perpendicular, pointing down the face when the mouth is level... or up
    up = -((top - mid)[:, 0] * nx + (top - mid)[:, 1] * ny)
    down = (bottom - mid)[:, 0] * nx + (bottom - mid)[:, 1] * ny
    r = lambda a: a[:, None, None]  # noqa: E731
    along = ((x - r(mid[:, 0])) * r(ux) + (y - r(mid[:, 1])) * r(uy)) / r(half)
    across = (x - r(mid[:, 0])) * r(nx) + (y - r(mid[:, 1])) * r(ny)
    bulge = np.clip(1.0 - along**2, 0.0, None)
    upper, lower = -r(up) * bulge, r(down) * bulge
    lips = _inside(np.maximum.reduce([upper - across, across - lower, (np.abs(along) - 1.0) * r(half)]))
    line_at = (upper + lower) / 2.0 * 0.3
    line = _inside(np.maximum(np.abs(across - line_at) - 0.6, (np.abs(along) - 0.95) * r(half)))
    return lips, line


def render_faces(geometry: dict[str, np.ndarray]) -> np.ndarray:
    """Draw the faces a geometry describes: (n, 96, 96) uint8."""
    geometry = {k: v.astype(np.float32) for k, v in geometry.items()}  # float32: twice as fast, precise enough
    g = {k: (v[:, None, None] if k in _STYLE_KEYS else v) for k, v in geometry.items()}
    kp = geometry["keypoints"]
    n = len(kp)
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    x, y = x[None], y[None]
    side = (x - (IMAGE_SIZE - 1) / 2.0) / ((IMAGE_SIZE - 1) / 2.0)  # -1 .. 1 across the image
    image = np.broadcast_to(g["background"] + 0.15 * g["light"] * side, (n, IMAGE_SIZE, IMAGE_SIZE)).copy()
    head = _ellipse(x, y, g["head_cx"], g["head_cy"], g["head_a"], g["head_b"], g["roll"])
    image = _paint(image, head, np.clip(g["skin"] + g["light"] * side, 0, 1))
    # hair: the top of a slightly larger head ellipse, above the hairline
    c, s = np.cos(g["roll"]), np.sin(g["roll"])
    v = -(x - g["head_cx"]) * s + (y - g["head_cy"]) * c
    scalp = _ellipse(x, y, g["head_cx"], g["head_cy"], g["head_a"] * 1.06, g["head_b"] * 1.04, g["roll"])
    image = _paint(image, scalp * _inside(v + g["hairline"]), g["hair"])
    for center, inner, outer in ((0, 2, 3), (1, 4, 5)):
        a, b = kp[:, inner], kp[:, outer]
        mid, half = (a + b) / 2.0, np.linalg.norm(b - a, axis=1) / 2.0
        angle = np.arctan2(b[:, 1] - a[:, 1], b[:, 0] - a[:, 0])
        sclera = _ellipse(
            x,
            y,
            mid[:, 0, None, None],
            mid[:, 1, None, None],
            half[:, None, None],
            g["sclera"] * half[:, None, None],
            angle[:, None, None],
        )
        image = _paint(image, sclera, np.clip(g["skin"] + 0.3, 0, 0.97))
        iris = _ellipse(x, y, kp[:, center, 0, None, None], kp[:, center, 1, None, None], g["iris"], g["iris"], 0.0)
        image = _paint(image, iris * sclera, 0.08)
    for inner, outer in ((6, 7), (8, 9)):
        image = _paint(image, _stroke(x, y, kp[:, inner], kp[:, outer], g["brow"]), g["hair"] * 0.7)
    # nose: a shaded ridge from between the eyes to the tip, two nostrils beside the tip
    bridge = (kp[:, 2] + kp[:, 4]) / 2.0
    image = _paint(image, 0.25 * _stroke(x, y, bridge, kp[:, 10], 1.5 * g["brow"]), g["skin"] - 0.15)
    for sign in (-1.0, 1.0):
        offset = np.stack(
            [
                sign * 4.0 * np.cos(geometry["roll"]) - 1.5 * np.sin(geometry["roll"]),
                sign * 4.0 * np.sin(geometry["roll"]) + 1.5 * np.cos(geometry["roll"]),
            ],
            axis=1,
        )
        nostril = kp[:, 10] + offset * (g["head_a"][:, 0, 0] / 35.0)[:, None]
        image = _paint(
            image,
            _ellipse(x, y, nostril[:, 0, None, None], nostril[:, 1, None, None], 2.2, 1.3, g["roll"]),
            g["skin"] * 0.35,
        )
    tip = _ellipse(x, y, kp[:, 10, 0, None, None], kp[:, 10, 1, None, None], 2.0, 2.0, 0.0)
    image = _paint(image, 0.5 * tip, np.clip(g["skin"] + 0.15, 0, 1))
    lips, line = _mouth(x, y, kp[:, 12], kp[:, 11], kp[:, 13], kp[:, 14])
    image = _paint(image, lips, g["lips"] + 0.3 * g["skin"])
    image = _paint(image, line * lips, 0.05)
    image = (image - 0.5) * g["contrast"] + 0.5 + geometry["texture"]
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ whole tables
def drop_labels(
    keypoints: np.ndarray, rng: np.random.Generator, complete_fraction: float = COMPLETE_FRACTION
) -> np.ndarray:
    """(n, 15, 2) exact keypoints -> (n, 30) with Kaggle-like NaNs."""
    n = len(keypoints)
    keep = np.ones((n, len(KEYPOINT_NAMES)), dtype=bool)
    always = [KEYPOINT_NAMES.index(name) for name in ALWAYS_PRESENT]
    others = [i for i in range(len(KEYPOINT_NAMES)) if i not in always]
    partial = rng.random(n) >= complete_fraction
    keep[np.ix_(partial, np.array(others))] = False
    keep[:, others] &= rng.random((n, len(others))) >= 0.01  # a few gaps among the fully labeled rows
    nose = KEYPOINT_NAMES.index("nose_tip")
    keep[:, [i for i in always if i != nose]] &= rng.random((n, len(always) - 1)) >= 0.003
    flat = keypoints.reshape(n, -1).astype(np.float32)
    flat[~np.repeat(keep, 2, axis=1)] = np.nan
    return flat


def make_faces(
    n: int, seed: int = 0, missing: bool = True, progress: Callable[[int], None] | None = None
) -> KeypointTable:
    """n synthetic faces with Kaggle-like missing labels (or all labels with missing=False).

    progress(done) is called after each chunk of CHUNK faces with the number drawn so far.
    """
    rng = np.random.default_rng(seed)
    images, keypoints = [], []
    for start in range(0, n, CHUNK):
        geometry = sample_geometry(min(CHUNK, n - start), rng)
        images.append(render_faces(geometry))
        keypoints.append(geometry["keypoints"])
        if progress is not None:
            progress(start + len(geometry["keypoints"]))
    kp = np.concatenate(keypoints) if keypoints else np.zeros((0, len(KEYPOINT_NAMES), 2))
    table_kp = drop_labels(kp, rng) if missing else kp.reshape(len(kp), -1).astype(np.float32)
    imgs = np.concatenate(images) if images else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return KeypointTable(imgs, table_kp, f"synthetic faces (n={n}, seed={seed})")


def write_training_csv(path: str | os.PathLike, n: int, seed: int = 0) -> Path:
    """Write n synthetic faces as a Kaggle-format training.csv."""
    table = make_faces(n, seed)
    atomic_write_text(path, format_training_csv(table.images, table.keypoints))
    return Path(path)


def write_test_csv(path: str | os.PathLike, n: int, seed: int = 1) -> Path:
    """Write n synthetic faces (no keypoints) as a Kaggle-format test.csv."""
    table = make_faces(n, seed, missing=False)
    atomic_write_text(path, format_test_csv(table.images))
    return Path(path)


def write_lookup_csv(path: str | os.PathLike, image_ids: list[int], features_per_image: int = 8, seed: int = 0) -> Path:
    """A Kaggle-style IdLookupTable.csv asking for some coordinates of each test image."""
    from torchlab.data.keypoints import COORD_COLUMNS

    rng = np.random.default_rng(seed)
    lines, row = ["RowId,ImageId,FeatureName,Location"], 1
    for image_id in image_ids:
        for col in sorted(rng.choice(len(COORD_COLUMNS), size=features_per_image, replace=False)):
            lines.append(f"{row},{image_id},{COORD_COLUMNS[col]},")
            row += 1
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def load_table(
    data: str | None,
    synthetic: int,
    synthetic_seed: int = SYNTHETIC_SEED,
    progress: Callable[[int], None] | None = None,
) -> KeypointTable:
    """The training table: a Kaggle CSV when `data` is given, else `synthetic` generated faces
    (progress(done) after each chunk drawn)."""
    if data:
        return read_training_csv(data)
    check_memory(
        synthetic * FACE_BYTES,
        f"{synthetic:,} synthetic faces",
        f"use fewer (--synthetic; a face takes about {FACE_BYTES // 1000} KB) or pass --data with a CSV",
    )
    return make_faces(synthetic, seed=synthetic_seed, progress=progress)
