"""Kaggle's measures and files for the keypoint tasks: predictions in pixels, RMSE per keypoint and overall,
the mean-face baseline, predictions for a test.csv and the RowId,Location submission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.data.keypoints import (
    COORD_COLUMNS,
    IMAGE_SIZE,
    PIXEL_SCALE,
    read_lookup_csv,
    read_test_csv,
)
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import masked_rmse
from torchlab.errors import DataError, UsageError
from torchlab.reporting.records import write_into, write_records


def predict_keypoints(model: nn.Module, images: np.ndarray, batch_size: int | None = 256) -> np.ndarray:
    """Gray faces (n, 96, 96), levels 0..255 -> (n, 30) pixel coordinates."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / PIXEL_SCALE).unsqueeze(1)
    return predict_outputs(model, x, batch_size).numpy().reshape(len(x), len(COORD_COLUMNS))


def per_keypoint_rmse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(15,) RMSE in pixels of each keypoint over its labeled x and y values (NaN if never labeled)."""
    sq = ((pred - np.nan_to_num(truth)) ** 2 * mask).reshape(len(pred), -1, 2).sum(axis=(0, 2))
    count = mask.reshape(len(pred), -1, 2).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(sq / count)


def overall_rmse_from(per_keypoint: np.ndarray) -> float:
    """Overall RMSE from per-keypoint RMSEs of equally labeled keypoints (the complete validation rows)."""
    return float(np.sqrt(np.nanmean(per_keypoint**2)))


IMAGE_CENTER = 47.5  # the mean of a coordinate that is never labeled


def mean_keypoints(keypoints: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """The mean of each coordinate over the rows where it is labeled (the image center where it never is)."""
    count = mask.sum(0)
    mean = torch.where(count > 0, (keypoints * mask).sum(0) / count.clamp_min(1), torch.tensor(IMAGE_CENTER))
    return [round(float(v), 4) for v in mean]


def mean_keypoint_baseline(
    train_kp: torch.Tensor, train_mask: torch.Tensor, val_kp: torch.Tensor, val_mask: torch.Tensor
) -> float:
    """Validation RMSE (pixels) of always predicting the training set's mean of each labeled coordinate."""
    pred = torch.tensor(mean_keypoints(train_kp, train_mask)).expand_as(val_kp)
    return masked_rmse(pred, val_kp, val_mask)


def predict_test_csv(
    model: nn.Module,
    path: str,
    out: str | None = None,
    fmt: str = "json",
    batch_size: int | None = 256,
    submission: str | None = None,
) -> dict[str, Any]:
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
        target = str(
            write_into(Path(out) / f"{source.stem}_keypoints.{fmt}", lambda where: write_records(rows, where, fmt))
        )
    return {
        "kind": "test_csv",
        "input": str(source),
        "faces": len(ids),
        "written": target,
        "image_ids": [int(i) for i in ids],
        "keypoints": pred.astype(float).tolist(),
    }


def _submission(
    model: nn.Module,
    source: Path,
    ids: np.ndarray,
    images: np.ndarray,
    lookup: str,
    out: str | None,
    batch_size: int | None,
) -> dict[str, Any]:
    if not out:
        raise UsageError("--submission writes FOLDER/submission.csv: add --out FOLDER")
    row_ids, image_ids, features = read_lookup_csv(lookup)
    position = {int(i): k for k, i in enumerate(ids)}
    unknown = [i for i in image_ids if int(i) not in position]
    if unknown:
        raise DataError(
            f"{lookup} asks for ImageId {unknown[0]}, which {source} does not hold; "
            "pass the test.csv that goes with this lookup table"
        )
    pred = np.clip(predict_keypoints(model, images, batch_size), 0.0, float(IMAGE_SIZE))
    column = {name: k for k, name in enumerate(COORD_COLUMNS)}
    values = pred[[position[int(i)] for i in image_ids], [column[f] for f in features]]
    rows = [{"RowId": int(r), "Location": float(v)} for r, v in zip(row_ids, values)]
    target = write_into(Path(out) / "submission.csv", lambda where: write_records(rows, where, "csv"))
    return {
        "kind": "submission",
        "input": str(source),
        "faces": len(ids),
        "requested": len(row_ids),
        "written": str(target),
        "row_ids": [int(r) for r in row_ids],
        "locations": values.astype(float).tolist(),
    }
