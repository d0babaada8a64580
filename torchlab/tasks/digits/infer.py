"""What a finished `digits` checkpoint (model digit-mlp) does: test-split metrics (evaluate), predictions for images or
test indices (predict), and a batch of its own inputs (example_inputs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.data.digits import PIXEL_SCALE, load_digits_split
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import accuracy, nll
from torchlab.errors import DataError, UsageError
from torchlab.runtime.guards import refuse_unused, require_regular_file
from torchlab.tasks.run import InferenceOptions


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """Accuracy and loss of a checkpoint's model on the digits test split."""
    refuse_unused(options, "digits evaluate (its data is scikit-learn's bundled digits)", "data")
    data = load_digits_split()
    probs = predict_outputs(model, data.x_test, options.batch_size).softmax(dim=1)
    return {"accuracy": accuracy(probs, data.y_test), "loss": nll(probs, data.y_test), "samples": len(data.y_test)}


def predict(
    model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions
) -> list[dict[str, Any]]:
    """One record per image file or test index: predicted class, its probability, all probabilities."""
    from torchlab.data.digits_image import image_to_digit_features

    refuse_unused(options, "digits predict", "data", "submission", "boxes", "detect")
    rows: list[tuple[str, np.ndarray, int | None]] = []
    data = None
    for index in options.index:
        data = data or load_digits_split()
        if not 0 <= index < len(data.y_test):
            raise UsageError(f"--index must be in 0..{len(data.y_test) - 1} (the digits test split), got {index}")
        rows.append((f"test[{index}]", data.x_test[index].numpy(), int(data.y_test[index])))
    for path in inputs:
        require_regular_file(path, "image")
        try:
            features = image_to_digit_features(path)
        except DataError as exc:  # name the file: one bad image fails the whole batch
            raise DataError(str(exc) if path in str(exc) else f"{path}: {exc}") from None
        rows.append((path, features / PIXEL_SCALE, None))
    if not rows:
        raise UsageError("give an image path or --index N")
    x = torch.from_numpy(np.stack([features for _, features, _ in rows])).float()
    probs = predict_outputs(model, x, options.batch_size).softmax(dim=1).numpy()
    return [
        {
            "input": label,
            "prediction": int(p.argmax()),
            "probability": float(p.max()),
            "true": true,
            "probabilities": {str(c): round(float(v), 4) for c, v in enumerate(p)},
        }
        for (label, _, true), p in zip(rows, probs)
    ]


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` digits of the test split, as the model takes them (pixels / 16)."""
    return load_digits_split().x_test[:count]
