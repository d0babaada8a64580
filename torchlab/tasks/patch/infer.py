"""What a finished `patch` checkpoint (model patch-linear) does: its fit against least squares on its patch (evaluate),
brightness at pixels or test indices (predict), and a batch of its own inputs (example_inputs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.data.patch import PatchScaling, design_matrix, photo_patch, ramp_patch
from torchlab.engine.inference import predict_outputs
from torchlab.errors import UsageError
from torchlab.runtime.guards import finite_pair, refuse_unused
from torchlab.tasks.patch.train import least_squares
from torchlab.tasks.run import InferenceOptions


def patch_from_meta(meta: dict[str, Any]) -> np.ndarray:
    """Rebuild the patch a checkpoint was trained on."""
    source = meta["source"]
    if source.get("kind") == "ramp":
        return ramp_patch(
            source["size"],
            source["intercept"],
            source["slope_x"],
            source["slope_y"],
            source["noise"],
            seed=source["seed"],
        )
    return photo_patch(source.get("image") or None, source["row"], source["col"], source["size"])


def saved_scaling(meta: dict[str, Any]) -> PatchScaling:
    """The scaling a checkpoint's model was trained with."""
    norm = meta["normalization"]
    return PatchScaling(norm["coord_divisor"], norm["brightness_divisor"])


def model_inputs(scaling: PatchScaling, rows: torch.Tensor) -> torch.Tensor:
    """Design rows [1, x, y] in pixels as the model takes them (scaled, float32)."""
    scaled, _ = scaling.apply(rows, torch.zeros(rows.shape[0], dtype=rows.dtype))
    return scaled.float()


def predict_rows(model: nn.Module, meta: dict[str, Any], rows: torch.Tensor) -> torch.Tensor:
    """Brightness (gray levels) at design rows [1, x, y] in pixels, through the checkpoint's scaling."""
    scaling = saved_scaling(meta)
    return predict_outputs(model, model_inputs(scaling, rows)).double().reshape(-1) * scaling.brightness


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """MSE of the checkpoint on its patch, next to least squares."""
    refuse_unused(options, "patch evaluate (its patch is rebuilt from the checkpoint)", "data")
    patch = patch_from_meta(meta)
    rows, targets = design_matrix(patch)
    mse = float(torch.mean((predict_rows(model, meta, rows) - targets) ** 2))
    exact = least_squares(rows, targets)
    exact_mse = float(torch.mean((rows @ exact - targets) ** 2))
    return {"mse": mse, "rmse": mse**0.5, "lstsq_mse": exact_mse, "pixels": int(targets.numel())}


def predict(
    model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions
) -> list[dict[str, Any]]:
    """One record per pixel position x,y given or patch pixel --index: the predicted brightness."""
    refuse_unused(options, "patch predict", "data", "submission", "boxes", "detect")
    points: list[tuple[str, float, float, float | None]] = []
    for text in inputs:
        x, y = finite_pair(text, "a pixel position x,y (column,row)", "3,17")
        points.append((f"x={x:g}, y={y:g}", x, y, None))
    if options.index:
        patch = patch_from_meta(meta)
        h, w = patch.shape
        for index in options.index:
            if not 0 <= index < h * w:
                raise UsageError(f"--index must be in 0..{h * w - 1} (pixels of the patch, row by row), got {index}")
            y, x = divmod(index, w)
            points.append((f"pixel {index} (x={x}, y={y})", float(x), float(y), float(patch[y, x])))
    if not points:
        raise UsageError("give pixel positions x,y (e.g. 3,17) or --index N")
    rows = torch.tensor([[1.0, x, y] for _, x, y, _ in points], dtype=torch.float64)
    values = predict_rows(model, meta, rows).tolist()
    return [
        {"input": label, "x": x, "y": y, "brightness": value, "true": true}
        for (label, x, y, true), value in zip(points, values)
    ]


def format_prediction(record: dict[str, Any]) -> str:
    extra = f" (patch: {record['true']:.2f})" if record["true"] is not None else ""
    return f"{record['input']}: brightness {record['brightness']:.2f}{extra}"


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` pixels of the checkpoint's patch as scaled design rows [1, x, y] (the model's input)."""
    rows, _ = design_matrix(patch_from_meta(meta))
    return model_inputs(saved_scaling(meta), rows[:count])
