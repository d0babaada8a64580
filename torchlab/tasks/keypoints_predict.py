"""`torchlab predict` for keypoint checkpoints: a photo, Kaggle's test.csv (optionally as a submission), or validation faces.

A photo of any size becomes grey, is centre-cropped to its largest square and resized to
96x96; the predicted keypoints are mapped back to the photo's own pixels (pixel centres on
whole numbers) and written as JSON or CSV, with an overlay PNG beside them.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from torchlab.checkpoint import atomic_write_text
from torchlab.data.keypoints import COORD_COLUMNS, IMAGE_SIZE, KEYPOINT_NAMES, KeypointTable, read_lookup_csv, read_test_csv
from torchlab.errors import DataError, UsageError


def _predict(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    from torchlab.tasks.keypoints import PIXEL_SCALE, predict_images

    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / PIXEL_SCALE).unsqueeze(1)
    return predict_images(model, x, batch_size)


def _out_dir(args: argparse.Namespace, source: Path) -> Path:
    return Path(args.out) if args.out else source.parent


# -------------------------------------------------------------------- photos
def photo_to_face(grey: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Grey photo (H, W) in [0, 1] -> (96x96 grey levels 0..255, crop (x0, y0, side)) from its central square."""
    from torchlab.data.images import resize

    height, width = grey.shape
    side = min(height, width)
    x0, y0 = (width - side) // 2, (height - side) // 2
    face = resize(grey[y0 : y0 + side, x0 : x0 + side], IMAGE_SIZE, IMAGE_SIZE)
    return np.clip(face * 255.0, 0, 255), (x0, y0, side)


def face_to_photo(points: np.ndarray, crop: tuple[int, int, int]) -> np.ndarray:
    """Keypoints in the 96x96 face (..., 2) -> the photo's pixels.

    Pixel j of the face covers [j, j + 1) * side / 96 of the square (resampling works on pixel
    areas), so its centre j lies at (j + 0.5) * side / 96 - 0.5 in pixel-centred photo coordinates.
    """
    x0, y0, side = crop
    scale = side / IMAGE_SIZE
    return (points + 0.5) * scale - 0.5 + np.array([x0, y0], dtype=np.float64)


def predict_photo(model: nn.Module, path: str, args: argparse.Namespace) -> list[str]:
    from PIL import Image

    from torchlab.data.images import load_grey
    from torchlab.plots.keypoints import plot_photo_keypoints

    source = Path(path)
    grey = load_grey(source)
    face, crop = photo_to_face(grey)
    points = face_to_photo(_predict(model, face[None])[0].reshape(-1, 2).astype(np.float64), crop)
    out_dir = _out_dir(args, source)
    stem = out_dir / f"{source.stem}_keypoints"
    record = {"image": str(source), "width": grey.shape[1], "height": grey.shape[0],
              "crop": {"x": crop[0], "y": crop[1], "size": crop[2]},
              "keypoints": {name: {"x": round(float(x), 2), "y": round(float(y), 2)}
                            for name, (x, y) in zip(KEYPOINT_NAMES, points)}}
    if args.format == "json":
        text, written = json.dumps(record, indent=2) + "\n", stem.with_suffix(".json")
    else:
        text = "keypoint,x,y\n" + "".join(f"{n},{x:.2f},{y:.2f}\n" for n, (x, y) in zip(KEYPOINT_NAMES, points))
        written = stem.with_suffix(".csv")
    with Image.open(source) as img:
        photo = np.asarray(img.convert("RGB"))
    atomic_write_text(written, text)
    overlay = plot_photo_keypoints(photo, points, crop, stem.with_suffix(".png"),
                                   title=f"{source.name}: predicted keypoints")
    lines = [f"{source}: {len(points)} keypoints in the photo's pixels -> {written}, overlay {overlay}"]
    lines += [f"  {name}: ({x:.1f}, {y:.1f})" for name, (x, y) in zip(KEYPOINT_NAMES, points)]
    return lines


# ------------------------------------------------------------------ test.csv
def predict_test_csv(model: nn.Module, path: str, args: argparse.Namespace) -> list[str]:
    """Predict every face of a Kaggle test.csv; with --submission write Kaggle's RowId,Location file."""
    source = Path(path)
    ids, images = read_test_csv(source)
    if args.submission:
        row_ids, image_ids, features = read_lookup_csv(args.submission)
        position = {int(i): k for k, i in enumerate(ids)}
        unknown = [i for i in image_ids if int(i) not in position]
        if unknown:
            raise DataError(f"{args.submission} asks for ImageId {unknown[0]}, which {source} does not hold; "
                            "pass the test.csv that goes with this lookup table")
        pred = np.clip(_predict(model, images, args.batch_size or 256), 0.0, float(IMAGE_SIZE))
        column = {name: k for k, name in enumerate(COORD_COLUMNS)}
        values = pred[[position[int(i)] for i in image_ids], [column[f] for f in features]]
        target = _submission_path(args, source)
        text = "RowId,Location\n" + "".join(f"{r},{v:.4f}\n" for r, v in zip(row_ids, values))
        atomic_write_text(target, text)
        return [f"{source}: {len(ids)} faces, {len(row_ids)} requested values (clipped to [0, {IMAGE_SIZE}]) "
                f"-> Kaggle submission {target}"]
    pred = _predict(model, images, args.batch_size or 256)
    target = _out_dir(args, source) / f"{source.stem}_keypoints.{args.format}"
    if args.format == "json":
        rows = [{"ImageId": int(i), **{c: round(float(v), 3) for c, v in zip(COORD_COLUMNS, p)}} for i, p in zip(ids, pred)]
        atomic_write_text(target, json.dumps(rows, indent=1) + "\n")
    else:
        buffer = io.StringIO()
        buffer.write("ImageId," + ",".join(COORD_COLUMNS) + "\n")
        for i, p in zip(ids, pred):
            buffer.write(f"{int(i)}," + ",".join(f"{v:.3f}" for v in p) + "\n")
        atomic_write_text(target, buffer.getvalue())
    return [f"{source}: keypoints of {len(ids)} faces -> {target}"]


def _submission_path(args: argparse.Namespace, source: Path) -> Path:
    if args.out and str(args.out).lower().endswith(".csv"):
        return Path(args.out)
    return _out_dir(args, source) / "submission.csv"


# ------------------------------------------------------------ validation rows
def predict_validation_rows(model: nn.Module, table: KeypointTable, val_rows: np.ndarray, indices: list[int]) -> list[str]:
    """Predicted vs true keypoints of validation faces chosen with --index."""
    for index in indices:
        if not 0 <= index < len(val_rows):
            raise UsageError(f"--index must be in 0..{len(val_rows) - 1} (the validation faces), got {index}")
    rows = val_rows[indices]
    pred = _predict(model, table.images[rows])
    lines = []
    for index, p, truth in zip(indices, pred, table.keypoints[rows]):
        error = float(np.sqrt(np.nanmean((p - truth) ** 2)))
        lines.append(f"validation face {index}: RMSE {error:.3f} px")
        for k, name in enumerate(KEYPOINT_NAMES):
            lines.append(f"  {name}: predicted ({p[2 * k]:.1f}, {p[2 * k + 1]:.1f}) "
                         f"true ({truth[2 * k]:.1f}, {truth[2 * k + 1]:.1f})")
    return lines
