"""What a finished keypoint checkpoint does: validation RMSE (evaluate), keypoints for photos, a Kaggle
test.csv or validation faces (predict), and a batch of its own inputs (example_inputs).

Each function returns records (dicts of values); `format_prediction` turns a record into the text
`torchlab predict` prints. Files are written only into the folder `out` the user gave (the overlay
PNG, the test.csv table, the Kaggle submission); torchlab.api.predict writes <out>/predictions.<format>."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.data.keypoints import (
    IMAGE_SIZE,
    KEYPOINT_NAMES,
    SYNTHETIC_SEED,
    KeypointSplit,
    KeypointTable,
    named_points,
    split_rows,
    to_tensors,
)
from torchlab.data.synthetic_faces import load_table
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import masked_rmse
from torchlab.errors import DataError, UsageError
from torchlab.reporting.records import write_into
from torchlab.runtime.guards import check_memory
from torchlab.tasks.keypoints.config import DEFAULT_SYNTHETIC
from torchlab.tasks.keypoints.faces import (
    CROP_BYTES_PER_PIXEL,
    MIN_FACE,
    Square,
    center_square,
    face_square,
    face_to_photo,
    find_faces,
    photo_to_face,
)
from torchlab.tasks.keypoints.kaggle import (
    mean_keypoint_baseline,
    per_keypoint_rmse,
    predict_keypoints,
    predict_test_csv,
)
from torchlab.tasks.run import InferenceOptions


def validation_data(meta: dict[str, Any], data: str | None = None) -> tuple[KeypointTable, KeypointSplit]:
    """A checkpoint's validation faces: from `data`, else the file or synthetic set it was trained on."""
    saved = meta.get("data", {})
    table = load_table(
        data or saved.get("csv"),
        int(saved.get("synthetic") or DEFAULT_SYNTHETIC),
        int(saved.get("synthetic_seed", SYNTHETIC_SEED)),
    )
    return table, split_rows(table, saved.get("missing", "mask"))


def predict_photo(
    model: nn.Module, path: str, out: str | None = None, boxes: Sequence[Any] = (), detect: bool | None = None
) -> list[dict[str, Any]]:
    """One record per face of a photo, keypoints in the photo's pixels; with `out`, <out>/<stem>_keypoints.png."""
    from torchlab.data.images import load_gray

    source = Path(path)
    gray = load_gray(source)
    height, width = gray.shape
    if min(height, width) < MIN_FACE:
        raise DataError(
            f"{source} is {width}x{height} pixels, too small to hold a face: a photo needs at least "
            f"{MIN_FACE}x{MIN_FACE} pixels (the model sees each face at {IMAGE_SIZE}x{IMAGE_SIZE})"
        )
    found, how, note = find_faces(gray, boxes, detect)
    squares = [face_square(box) for box in found] or [center_square(width, height)]
    check_crop_memory(squares, found if how == "box" else [], width, height)
    crops = np.stack([photo_to_face(gray, square)[0] for square in squares])
    pred = predict_keypoints(model, crops).reshape(len(squares), -1, 2).astype(np.float64)
    points = [face_to_photo(p, square) for p, square in zip(pred, squares)]
    overlay = None
    if out:
        overlay = str(
            write_into(
                Path(out) / f"{source.stem}_keypoints.png",
                lambda target: _overlay(source, points, squares, how, target),
            )
        )
    return [
        {
            "kind": "photo",
            "input": str(source),
            "width": width,
            "height": height,
            "face": k + 1,
            "faces": len(squares),
            "found_by": how,
            "box": found[k].as_dict() if found else None,
            "crop": {"x": square[0], "y": square[1], "size": square[2]},
            "keypoints": named_points(p),
            "overlay": overlay,
            "note": note,
        }
        for k, (square, p) in enumerate(zip(squares, points))
    ]


def check_crop_memory(squares: list[Square], boxes: Sequence[Any], width: int, height: int) -> None:
    """Refuse a face square whose crop would not fit the memory budget (a mistyped --box), before cutting it."""
    k = max(range(len(squares)), key=lambda i: squares[i][2])  # the largest square is the one to check
    side = squares[k][2]
    what = (
        f"--box {boxes[k].x:g},{boxes[k].y:g},{boxes[k].w:g},{boxes[k].h:g} (a {side:,}x{side:,} crop of a "
        f"{width}x{height} photo)"
        if boxes
        else f"a {side:,}x{side:,} face crop"
    )
    check_memory(
        side * side * CROP_BYTES_PER_PIXEL,
        what,
        "give the face's box in the photo's pixels: X,Y,W,H with W and H at most the photo's size",
    )


def _overlay(source: Path, points: list[np.ndarray], squares: list[Square], how: str, target: Path) -> Path:
    from torchlab.data.images import load_rgb
    from torchlab.tasks.keypoints.plots import plot_photo_keypoints

    photo = load_rgb(source)
    labels = ["center crop"] if how == "center crop" else [f"face {k + 1}" for k in range(len(squares))]
    faces = "1 face" if len(squares) == 1 else f"{len(squares)} faces"
    title = f"{source.name}: predicted keypoints ({'center crop' if how == 'center crop' else faces})"
    return plot_photo_keypoints(photo, points, squares, target, title=title, labels=labels)


def predict_validation_rows(
    model: nn.Module, table: KeypointTable, val_rows: np.ndarray, indices: list[int], batch_size: int | None = 256
) -> list[dict[str, Any]]:
    """Predicted vs true keypoints of the validation faces chosen with --index."""
    for index in indices:
        if not 0 <= index < len(val_rows):
            raise UsageError(f"--index must be in 0..{len(val_rows) - 1} (the validation faces), got {index}")
    rows = val_rows[list(indices)]
    pred = predict_keypoints(model, table.images[rows], batch_size)
    return [
        {
            "kind": "validation",
            "input": f"validation[{index}]",
            "index": int(index),
            "rmse_px": float(np.sqrt(np.nanmean((p - truth) ** 2))),
            "keypoints": named_points(p),
            "true": named_points(truth),
        }
        for index, p, truth in zip(indices, pred, table.keypoints[rows])
    ]


def format_prediction(record: dict[str, Any]) -> str:
    """The lines `torchlab predict` prints for one record."""
    kind = record["kind"]
    if kind == "validation":
        lines = [f"validation face {record['index']}: RMSE {record['rmse_px']:.3f} px"]
        lines += [
            f"  {name}: predicted ({p['x']:.1f}, {p['y']:.1f}) true ({t['x']:.1f}, {t['y']:.1f})"
            for (name, p), t in zip(record["keypoints"].items(), record["true"].values())
        ]
    elif kind == "photo":
        lines = [_photo_line(record)]
        if record.get("note"):
            lines.append(f"  note: {record['note']}")
        lines += [f"  {name}: ({p['x']:.1f}, {p['y']:.1f})" for name, p in record["keypoints"].items()]
    elif kind == "submission":
        lines = [
            f"{record['input']}: {record['faces']} faces, {record['requested']} requested values "
            f"(clipped to [0, {IMAGE_SIZE}]) -> Kaggle submission {record['written']}"
        ]
    else:
        where = f" -> {record['written']}" if record.get("written") else " (add --out FOLDER to write them as a table)"
        lines = [f"{record['input']}: keypoints of {record['faces']} faces{where}"]
    return "\n".join(lines)


def _photo_line(record: dict[str, Any]) -> str:
    """'photo.jpg face 2 of 3 (detector box x 155, y 104, 224x224): 15 keypoints in the photo's pixels, overlay ...'."""
    crop, box = record["crop"], record.get("box")
    if box:
        who = "detector" if record["found_by"] == "detector" else "given"
        where = f"{who} box x {box['x']:g}, y {box['y']:g}, {box['w']:g}x{box['h']:g}"
    else:
        where = f"center square x {crop['x']}, y {crop['y']}, {crop['size']}x{crop['size']}"
    overlay = f", overlay {record['overlay']}" if record.get("overlay") else ""
    return (
        f"{record['input']} face {record['face']} of {record['faces']} ({where}): "
        f"{len(record['keypoints'])} keypoints in the photo's pixels{overlay}"
    )


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """RMSE (pixels) overall and per keypoint on the checkpoint's validation faces, and the mean-face baseline."""
    table, split = validation_data(meta, options.data)
    images, truth, mask = to_tensors(table, split.val)
    train_t = to_tensors(table, split.train)
    pred = predict_outputs(model, images, options.batch_size).numpy()
    per_kp = per_keypoint_rmse(pred, truth.numpy(), mask.numpy())
    out = {
        "val_rmse_px": masked_rmse(pred, truth, mask),
        "baseline_rmse_px": mean_keypoint_baseline(train_t[1], train_t[2], truth, mask),
        "val_rows": len(split.val),
    }
    out.update({f"rmse_{n}": float(v) for n, v in zip(KEYPOINT_NAMES, per_kp)})
    return out


def predict(
    model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions
) -> list[dict[str, Any]]:
    """Records for the validation faces (--index), each face of each photo, and each test.csv (or Kaggle submission).

    Files go only into options.out (a folder): photo overlays, test.csv tables, submission.csv.
    """
    csv_inputs = [str(p).lower().endswith(".csv") for p in inputs]
    photos = csv_inputs.count(False)
    if options.submission and not any(csv_inputs):
        raise UsageError(
            "--submission needs Kaggle's test.csv as the input: torchlab predict CKPT test.csv "
            "--submission IdLookupTable.csv --out FOLDER"
        )
    if options.boxes and photos != 1:
        raise UsageError(
            f"--box gives faces in one photo, but {photos} photos were given: predict one photo with --box"
        )
    records: list[dict[str, Any]] = []
    if options.index:
        table, split = validation_data(meta, options.data)
        records += predict_validation_rows(model, table, split.val, list(options.index), options.batch_size)
    for path, is_csv in zip(inputs, csv_inputs):
        if is_csv:
            records.append(
                predict_test_csv(model, path, options.out, options.format, options.batch_size, options.submission)
            )
        else:
            records += predict_photo(model, path, options.out, options.boxes, options.detect)
    if not records:
        raise UsageError("give a photo, a test.csv, or --index N (a validation face)")
    return records


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` validation faces of the checkpoint's data (or --data), pixels in [0, 1]."""
    table, split = validation_data(meta, options.data)
    return to_tensors(table, split.val[:count])[0]
