"""What a finished `ring` checkpoint (model ring-mlp) does: test accuracy beside the hand-set ring net (evaluate),
ring or not for points (predict), and a batch of its own inputs (example_inputs)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import binary_accuracy
from torchlab.errors import UsageError
from torchlab.runtime.guards import finite_pair, refuse_unused
from torchlab.tasks.ring.train import hand_set_accuracy, make_points
from torchlab.tasks.run import InferenceOptions


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """Accuracy and loss on the checkpoint's test points, next to the hand-set net's accuracy."""
    refuse_unused(options, "ring evaluate (its points are rebuilt from the checkpoint)", "data")
    data = meta["data"]
    _, _, x_test, y_test = make_points(data)
    logits = predict_outputs(model, x_test, options.batch_size)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y_test).item()
    return {
        "accuracy": binary_accuracy(logits, y_test),
        "loss": loss,
        "hand_set_accuracy": hand_set_accuracy(x_test, y_test, data["a"], data["b"]),
        "points": len(y_test),
    }


def predict(
    model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions
) -> list[dict[str, Any]]:
    """One record per point x1,x2 given or test point --index: in the ring or not, and the probability."""
    refuse_unused(options, "ring predict", "data", "submission", "boxes", "detect")
    rows: list[tuple[str, list[float], int | None]] = []
    for text in inputs:
        x1, x2 = finite_pair(text, "a point x1,x2", "1.5,0.2")
        rows.append((f"({x1:g}, {x2:g})", [x1, x2], None))
    if options.index:
        _, _, x_test, y_test = make_points(meta["data"])
        for index in options.index:
            if not 0 <= index < len(x_test):
                raise UsageError(f"--index must be in 0..{len(x_test) - 1} (the test points), got {index}")
            x1, x2 = x_test[index].tolist()
            rows.append(
                (f"test[{index}] ({x1:.3f}, {x2:.3f}), label {int(y_test[index])}", [x1, x2], int(y_test[index]))
            )
    if not rows:
        raise UsageError("give points x1,x2 (e.g. 1.5,0.2) or --index N")
    probs = predict_outputs(model, torch.tensor([p for _, p, _ in rows])).sigmoid().reshape(-1).tolist()
    return [
        {"input": label, "x1": point[0], "x2": point[1], "in_ring": p >= 0.5, "probability": p, "true": true}
        for (label, point, true), p in zip(rows, probs)
    ]


def format_prediction(record: dict[str, Any]) -> str:
    return f"{record['input']}: in ring {record['in_ring']} (probability {record['probability']:.3f})"


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` test points, rebuilt from the checkpoint."""
    return make_points(meta["data"])[2][:count]
