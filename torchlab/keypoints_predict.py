"""Predictions of a keypoint checkpoint: a photo, Kaggle's test.csv (optionally as a submission), or validation faces.

A photo of any size becomes grey, is centre-cropped to its largest square and resized to
96x96; the predicted keypoints are mapped back to the photo's own pixels (pixel centres on
whole numbers) and written as JSON or CSV, with an overlay PNG beside them.

Each function returns one record (a dict of values) per face, photo or CSV file;
`format_prediction` turns a record into the text `torchlab predict` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from torchlab.data.keypoints import COORD_COLUMNS, IMAGE_SIZE, KEYPOINT_NAMES, KeypointTable, read_lookup_csv, read_test_csv
from torchlab.errors import DataError, UsageError
from torchlab.keypoints_eval import predict_keypoints
from torchlab.records import write_records


def named_points(points: np.ndarray) -> dict[str, dict[str, float]]:
    """(15, 2) or (30,) coordinates -> {keypoint name: {"x": x, "y": y}}."""
    pairs = np.asarray(points, dtype=np.float64).reshape(len(KEYPOINT_NAMES), 2)
    return {name: {"x": float(x), "y": float(y)} for name, (x, y) in zip(KEYPOINT_NAMES, pairs)}


def _out_dir(out: str | None, source: Path) -> Path:
    return Path(out) if out else source.parent


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


def predict_photo(model: nn.Module, path: str, out: str | None = None, fmt: str = "json") -> dict[str, Any]:
    """Keypoints of a photo in its own pixels; writes <stem>_keypoints.json|csv and an overlay PNG."""
    from PIL import Image

    from torchlab.data.images import load_grey
    from torchlab.plots.keypoints import plot_photo_keypoints

    source = Path(path)
    grey = load_grey(source)
    face, crop = photo_to_face(grey)
    points = face_to_photo(predict_keypoints(model, face[None])[0].reshape(-1, 2).astype(np.float64), crop)
    stem = _out_dir(out, source) / f"{source.stem}_keypoints"
    if fmt == "json":
        rows = [{"image": str(source), "width": grey.shape[1], "height": grey.shape[0],
                 "crop": {"x": crop[0], "y": crop[1], "size": crop[2]},
                 "keypoints": {name: {"x": round(float(x), 2), "y": round(float(y), 2)}
                               for name, (x, y) in zip(KEYPOINT_NAMES, points)}}]
    else:
        rows = [{"keypoint": name, "x": float(x), "y": float(y)} for name, (x, y) in zip(KEYPOINT_NAMES, points)]
    with Image.open(source) as img:
        photo = np.asarray(img.convert("RGB"))
    written = write_records(rows, stem.with_suffix(f".{fmt}"), fmt)
    overlay = plot_photo_keypoints(photo, points, crop, stem.with_suffix(".png"),
                                   title=f"{source.name}: predicted keypoints")
    return {"kind": "photo", "input": str(source), "width": grey.shape[1], "height": grey.shape[0],
            "crop": {"x": crop[0], "y": crop[1], "size": crop[2]}, "keypoints": named_points(points),
            "written": str(written), "overlay": str(overlay)}


# ------------------------------------------------------------------ test.csv
def predict_test_csv(model: nn.Module, path: str, out: str | None = None, fmt: str = "json",
                     batch_size: int | None = 256, submission: str | None = None) -> dict[str, Any]:
    """Predict every face of a Kaggle test.csv; with `submission` (IdLookupTable.csv) write Kaggle's RowId,Location."""
    source = Path(path)
    ids, images = read_test_csv(source)
    if submission:
        return _submission(model, source, ids, images, submission, out, batch_size)
    pred = predict_keypoints(model, images, batch_size)
    rows = [{"ImageId": int(i), **{c: round(float(v), 3) for c, v in zip(COORD_COLUMNS, p)}} for i, p in zip(ids, pred)]
    target = write_records(rows, _out_dir(out, source) / f"{source.stem}_keypoints.{fmt}", fmt)
    return {"kind": "test_csv", "input": str(source), "faces": len(ids), "written": str(target),
            "image_ids": [int(i) for i in ids], "keypoints": pred.astype(float).tolist()}


def _submission(model: nn.Module, source: Path, ids: np.ndarray, images: np.ndarray, lookup: str,
                out: str | None, batch_size: int | None) -> dict[str, Any]:
    row_ids, image_ids, features = read_lookup_csv(lookup)
    position = {int(i): k for k, i in enumerate(ids)}
    unknown = [i for i in image_ids if int(i) not in position]
    if unknown:
        raise DataError(f"{lookup} asks for ImageId {unknown[0]}, which {source} does not hold; "
                        "pass the test.csv that goes with this lookup table")
    pred = np.clip(predict_keypoints(model, images, batch_size), 0.0, float(IMAGE_SIZE))
    column = {name: k for k, name in enumerate(COORD_COLUMNS)}
    values = pred[[position[int(i)] for i in image_ids], [column[f] for f in features]]
    target = Path(out) if out and str(out).lower().endswith(".csv") else _out_dir(out, source) / "submission.csv"
    write_records([{"RowId": int(r), "Location": float(v)} for r, v in zip(row_ids, values)], target, "csv")
    return {"kind": "submission", "input": str(source), "faces": len(ids), "requested": len(row_ids),
            "written": str(target), "row_ids": [int(r) for r in row_ids], "locations": values.astype(float).tolist()}


# ------------------------------------------------------------ validation rows
def predict_validation_rows(model: nn.Module, table: KeypointTable, val_rows: np.ndarray, indices: list[int],
                            batch_size: int | None = 256) -> list[dict[str, Any]]:
    """Predicted vs true keypoints of the validation faces chosen with --index."""
    for index in indices:
        if not 0 <= index < len(val_rows):
            raise UsageError(f"--index must be in 0..{len(val_rows) - 1} (the validation faces), got {index}")
    rows = val_rows[list(indices)]
    pred = predict_keypoints(model, table.images[rows], batch_size)
    return [{"kind": "validation", "input": f"validation[{index}]", "index": int(index),
             "rmse_px": float(np.sqrt(np.nanmean((p - truth) ** 2))),
             "keypoints": named_points(p), "true": named_points(truth)}
            for index, p, truth in zip(indices, pred, table.keypoints[rows])]


# -------------------------------------------------------------------- text
def format_prediction(record: dict[str, Any]) -> str:
    """The lines `torchlab predict` prints for one record."""
    kind, points = record["kind"], record.get("keypoints")
    if kind == "validation":
        lines = [f"validation face {record['index']}: RMSE {record['rmse_px']:.3f} px"]
        lines += [f"  {name}: predicted ({p['x']:.1f}, {p['y']:.1f}) true ({t['x']:.1f}, {t['y']:.1f})"
                  for (name, p), t in zip(points.items(), record["true"].values())]
    elif kind == "photo":
        lines = [f"{record['input']}: {len(points)} keypoints in the photo's pixels -> {record['written']}, "
                 f"overlay {record['overlay']}"]
        lines += [f"  {name}: ({p['x']:.1f}, {p['y']:.1f})" for name, p in points.items()]
    elif kind == "submission":
        lines = [f"{record['input']}: {record['faces']} faces, {record['requested']} requested values "
                 f"(clipped to [0, {IMAGE_SIZE}]) -> Kaggle submission {record['written']}"]
    else:
        lines = [f"{record['input']}: keypoints of {record['faces']} faces -> {record['written']}"]
    return "\n".join(lines)
