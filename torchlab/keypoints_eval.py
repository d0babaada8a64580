"""What training, evaluation and prediction of the keypoint tasks share.

The training table (a Kaggle CSV or synthetic faces), its tensors, the masked loss, the RMSE
per keypoint, the mean-face baseline, and a model's predictions in pixels. Not a task: the
three keypoint tasks (torchlab/tasks/keypoints.py) and photo/CSV prediction
(torchlab/keypoints_predict.py) both import it, and it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.data.keypoints import COORD_COLUMNS, PIXELS, KeypointSplit, KeypointTable, read_training_csv, split_rows
from torchlab.inference import predict_outputs
from torchlab.metrics import masked_rmse
from torchlab.recipes.keypoints import DEFAULT_SYNTHETIC

PIXEL_SCALE = 255.0  # grey levels 0..255 -> inputs in [0, 1]
SYNTHETIC_SEED = 0
IMAGE_CENTRE = 47.5  # the mean of a coordinate that is never labelled
# Memory a training run holds per face: the uint8 table, the float32 training tensors and the copies
# made on the way (measured peak: 67.6 KB per face for 20,000 synthetic faces); on a GPU the float32 tensors.
FACE_BYTES = 70_000
DEVICE_FACE_BYTES = 4 * PIXELS + 2 * 4 * len(COORD_COLUMNS)


def load_table(data: str | None, synthetic: int, synthetic_seed: int = SYNTHETIC_SEED,
               progress: Callable[[int], None] | None = None) -> KeypointTable:
    """The training table: a Kaggle CSV when `data` is given, else `synthetic` generated faces
    (progress(done) after each chunk drawn)."""
    if data:
        return read_training_csv(data)
    from torchlab.data.synthetic_faces import make_faces

    return make_faces(synthetic, seed=synthetic_seed, progress=progress)


def validation_data(meta: dict[str, Any], data: str | None = None) -> tuple[KeypointTable, KeypointSplit]:
    """A checkpoint's validation faces: from `data`, else the file or synthetic set it was trained on."""
    saved = meta.get("data", {})
    table = load_table(data or saved.get("csv"), int(saved.get("synthetic") or DEFAULT_SYNTHETIC),
                       int(saved.get("synthetic_seed", SYNTHETIC_SEED)))
    return table, split_rows(table, saved.get("missing", "mask"))


def to_tensors(table: KeypointTable, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images (n, 1, 96, 96) in [0, 1], keypoints (n, 30) with 0 where unlabelled, mask (n, 30))."""
    images = torch.from_numpy(table.images[rows]).float().div_(PIXEL_SCALE).unsqueeze(1)
    mask = torch.from_numpy(table.labelled[rows]).float()
    keypoints = torch.from_numpy(np.nan_to_num(table.keypoints[rows])) * mask
    return images, keypoints, mask


def predict_keypoints(model: nn.Module, images: np.ndarray, batch_size: int | None = 256) -> np.ndarray:
    """Grey faces (n, 96, 96), levels 0..255 -> (n, 30) pixel coordinates."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / PIXEL_SCALE).unsqueeze(1)
    return predict_outputs(model, x, batch_size).numpy().reshape(len(x), len(COORD_COLUMNS))


def masked_mse(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the labelled coordinates (mask = 1); unlabelled ones get no gradient.

    With a full mask this is exactly nn.MSELoss() (the seed's loss).
    """
    diff = (output.float() - target.float()) * mask
    return diff.pow(2).sum() / mask.sum().clamp_min(1.0)


def per_keypoint_rmse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(15,) RMSE in pixels of each keypoint over its labelled x and y values (NaN if never labelled)."""
    sq = ((pred - np.nan_to_num(truth)) ** 2 * mask).reshape(len(pred), -1, 2).sum(axis=(0, 2))
    count = mask.reshape(len(pred), -1, 2).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(sq / count)


def overall_rmse_from(per_keypoint: np.ndarray) -> float:
    """Overall RMSE from per-keypoint RMSEs of equally labelled keypoints (the complete validation rows)."""
    return float(np.sqrt(np.nanmean(per_keypoint ** 2)))


def mean_keypoints(keypoints: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """The mean of each coordinate over the rows where it is labelled (the image centre where it never is)."""
    count = mask.sum(0)
    mean = torch.where(count > 0, (keypoints * mask).sum(0) / count.clamp_min(1), torch.tensor(IMAGE_CENTRE))
    return [round(float(v), 4) for v in mean]


def mean_keypoint_baseline(train_kp: torch.Tensor, train_mask: torch.Tensor,
                           val_kp: torch.Tensor, val_mask: torch.Tensor) -> float:
    """Validation RMSE (pixels) of always predicting the training set's mean of each labelled coordinate."""
    pred = torch.tensor(mean_keypoints(train_kp, train_mask)).expand_as(val_kp)
    return masked_rmse(pred, val_kp, val_mask)
