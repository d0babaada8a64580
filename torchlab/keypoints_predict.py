"""Predictions of a keypoint checkpoint: faces in a photo, Kaggle's test.csv (optionally as a submission), or
validation faces.

A photo becomes grey; its faces are found by OpenCV's detector (torchlab[faces]) or given by hand
(boxes), each face's square, framed like the training faces (torchlab/faces.py), is resized to
96x96 and predicted, and the keypoints are mapped back to the photo's own pixels (pixel centres on
whole numbers). Without a detector, or when it finds no face, the photo's centre square is used and
the record's "note" says so.

Each function returns records (dicts of values): one per face, test.csv or validation face;
`format_prediction` turns a record into the text `torchlab predict` prints. Files are written only
into the folder `out` the user gave (the overlay PNG, the test.csv table, the Kaggle submission);
the records themselves go to <out>/predictions.<format> (torchlab.api.predict writes them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from torchlab.data.keypoints import COORD_COLUMNS, IMAGE_SIZE, KEYPOINT_NAMES, KeypointTable, read_lookup_csv, read_test_csv
from torchlab.errors import DataError, UsageError
from torchlab.faces import INSTALL_HINT, MIN_FACE, Box, centre_square, check_box, cut_square, detect_faces, \
    detector_available, face_square
from torchlab.keypoints_eval import predict_keypoints
from torchlab.records import write_records

Square = tuple[int, int, int]  # (x0, y0, side) in photo pixels


def named_points(points: np.ndarray) -> dict[str, dict[str, float]]:
    """(15, 2) or (30,) coordinates -> {keypoint name: {"x": x, "y": y}}."""
    pairs = np.asarray(points, dtype=np.float64).reshape(len(KEYPOINT_NAMES), 2)
    return {name: {"x": float(x), "y": float(y)} for name, (x, y) in zip(KEYPOINT_NAMES, pairs)}


def write_into(target: Path, write: Callable[[Path], Any]) -> Path:
    """write(target), an operating-system failure turned into a one-line error that names `target` (not a temp file)."""
    try:
        write(target)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}; give --out a folder you can write to") from None
    return target


# -------------------------------------------------------------------- photos
def photo_to_face(grey: np.ndarray, square: Square | None = None) -> tuple[np.ndarray, Square]:
    """Grey photo (H, W) in [0, 1] -> (96x96 grey levels 0..255, square (x0, y0, side)).

    The square defaults to the photo's central one; parts of a square outside the photo repeat its edge.
    """
    from torchlab.data.images import resize

    square = square or centre_square(grey.shape[1], grey.shape[0])
    face = resize(cut_square(grey, square), IMAGE_SIZE, IMAGE_SIZE)
    return np.clip(face * 255.0, 0, 255), square


def face_to_photo(points: np.ndarray, crop: Square) -> np.ndarray:
    """Keypoints in the 96x96 face (..., 2) -> the photo's pixels.

    Pixel j of the face covers [j, j + 1) * side / 96 of the square (resampling works on pixel
    areas), so its centre j lies at (j + 0.5) * side / 96 - 0.5 in pixel-centred photo coordinates.
    """
    x0, y0, side = crop
    scale = side / IMAGE_SIZE
    return (points + 0.5) * scale - 0.5 + np.array([x0, y0], dtype=np.float64)


def find_faces(grey: np.ndarray, boxes: Sequence[Any] = (), detect: bool | None = None
               ) -> tuple[list[Box], str, str | None]:
    """(face boxes, how they were found, note): hand-given `boxes`, else the detector's, else none.

    detect=None uses the detector when OpenCV is installed; True insists (a UsageError naming the
    install command without it); False never detects. No boxes means: use the centre square (the note says why).
    """
    height, width = grey.shape
    if boxes:
        if detect:
            raise UsageError("give faces with --box or ask for --detect, not both")
        return [check_box(b, width, height) for b in boxes], "box", None
    if detect is False:
        return [], "centre crop", None
    if detect is None and not detector_available():
        return [], "centre crop", (f"no face detector installed ({INSTALL_HINT}), so the keypoints are for the "
                                   "centre square; give the face with --box X,Y,W,H")
    found = detect_faces(grey)
    note = None if found else ("the detector found no frontal face, so the keypoints are for the centre square; "
                               "give the face with --box X,Y,W,H")
    return found, "detector", note


def predict_photo(model: nn.Module, path: str, out: str | None = None, boxes: Sequence[Any] = (),
                  detect: bool | None = None) -> list[dict[str, Any]]:
    """One record per face of a photo, keypoints in the photo's pixels; with `out`, <out>/<stem>_keypoints.png."""
    from torchlab.data.images import load_grey

    source = Path(path)
    grey = load_grey(source)
    height, width = grey.shape
    if min(height, width) < MIN_FACE:
        raise DataError(f"{source} is {width}x{height} pixels, too small to hold a face: a photo needs at least "
                        f"{MIN_FACE}x{MIN_FACE} pixels (the model sees each face at {IMAGE_SIZE}x{IMAGE_SIZE})")
    found, how, note = find_faces(grey, boxes, detect)
    squares = [face_square(box) for box in found] or [centre_square(width, height)]
    crops = np.stack([photo_to_face(grey, square)[0] for square in squares])
    pred = predict_keypoints(model, crops).reshape(len(squares), -1, 2).astype(np.float64)
    points = [face_to_photo(p, square) for p, square in zip(pred, squares)]
    overlay = None
    if out:
        overlay = str(write_into(Path(out) / f"{source.stem}_keypoints.png",
                                 lambda target: _overlay(source, points, squares, how, target)))
    return [{"kind": "photo", "input": str(source), "width": width, "height": height, "face": k + 1,
             "faces": len(squares), "found_by": how, "box": found[k].as_dict() if found else None,
             "crop": {"x": square[0], "y": square[1], "size": square[2]}, "keypoints": named_points(p),
             "overlay": overlay, "note": note}
            for k, (square, p) in enumerate(zip(squares, points))]


def _overlay(source: Path, points: list[np.ndarray], squares: list[Square], how: str, target: Path) -> Path:
    from torchlab.data.images import load_rgb
    from torchlab.plots.keypoints import plot_photo_keypoints

    photo = load_rgb(source)
    labels = ["centre crop"] if how == "centre crop" else [f"face {k + 1}" for k in range(len(squares))]
    faces = "1 face" if len(squares) == 1 else f"{len(squares)} faces"
    title = f"{source.name}: predicted keypoints ({'centre crop' if how == 'centre crop' else faces})"
    return plot_photo_keypoints(photo, points, squares, target, title=title, labels=labels)


# ------------------------------------------------------------------ test.csv
def predict_test_csv(model: nn.Module, path: str, out: str | None = None, fmt: str = "json",
                     batch_size: int | None = 256, submission: str | None = None) -> dict[str, Any]:
    """Predict every face of a Kaggle test.csv; with `out`, the table <out>/<stem>_keypoints.<fmt>;
    with `submission` (IdLookupTable.csv) Kaggle's RowId,Location as <out>/submission.csv."""
    source = Path(path)
    ids, images = read_test_csv(source)
    if submission:
        return _submission(model, source, ids, images, submission, out, batch_size)
    pred = predict_keypoints(model, images, batch_size)
    rows = [{"ImageId": int(i), **{c: round(float(v), 3) for c, v in zip(COORD_COLUMNS, p)}} for i, p in zip(ids, pred)]
    target = None
    if out:
        target = str(write_into(Path(out) / f"{source.stem}_keypoints.{fmt}",
                                lambda where: write_records(rows, where, fmt)))
    return {"kind": "test_csv", "input": str(source), "faces": len(ids), "written": target,
            "image_ids": [int(i) for i in ids], "keypoints": pred.astype(float).tolist()}


def _submission(model: nn.Module, source: Path, ids: np.ndarray, images: np.ndarray, lookup: str,
                out: str | None, batch_size: int | None) -> dict[str, Any]:
    if not out:
        raise UsageError("--submission writes FOLDER/submission.csv: add --out FOLDER")
    row_ids, image_ids, features = read_lookup_csv(lookup)
    position = {int(i): k for k, i in enumerate(ids)}
    unknown = [i for i in image_ids if int(i) not in position]
    if unknown:
        raise DataError(f"{lookup} asks for ImageId {unknown[0]}, which {source} does not hold; "
                        "pass the test.csv that goes with this lookup table")
    pred = np.clip(predict_keypoints(model, images, batch_size), 0.0, float(IMAGE_SIZE))
    column = {name: k for k, name in enumerate(COORD_COLUMNS)}
    values = pred[[position[int(i)] for i in image_ids], [column[f] for f in features]]
    rows = [{"RowId": int(r), "Location": float(v)} for r, v in zip(row_ids, values)]
    target = write_into(Path(out) / "submission.csv", lambda where: write_records(rows, where, "csv"))
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
        lines = [_photo_line(record)]
        if record.get("note"):
            lines.append(f"  note: {record['note']}")
        lines += [f"  {name}: ({p['x']:.1f}, {p['y']:.1f})" for name, p in points.items()]
    elif kind == "submission":
        lines = [f"{record['input']}: {record['faces']} faces, {record['requested']} requested values "
                 f"(clipped to [0, {IMAGE_SIZE}]) -> Kaggle submission {record['written']}"]
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
        where = f"centre square x {crop['x']}, y {crop['y']}, {crop['size']}x{crop['size']}"
    overlay = f", overlay {record['overlay']}" if record.get("overlay") else ""
    return (f"{record['input']} face {record['face']} of {record['faces']} ({where}): "
            f"{len(record['keypoints'])} keypoints in the photo's pixels{overlay}")
