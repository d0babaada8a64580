"""What a finished `mnist` checkpoint does: test-set metrics (evaluate), predictions for images or
test indices (predict), and a batch of its own inputs for checks such as the export parity test."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchlab.data.mnist import load_test_split
from torchlab.data.splits import normalize
from torchlab.engine.inference import class_probabilities, predict_outputs
from torchlab.engine.metrics import accuracy, nll
from torchlab.errors import UsageError
from torchlab.runtime.guards import refuse_unused
from torchlab.tasks.run import InferenceOptions

EVAL_BATCH = 2000


def probabilities(model: nn.Module, x: torch.Tensor, batch_size: int | None = EVAL_BATCH) -> torch.Tensor:
    """(n, classes) probabilities on the CPU; a one-logit model gives columns (1 - p, p)."""
    return class_probabilities(predict_outputs(model, x, batch_size))


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """Accuracy and loss of a checkpoint's model on the MNIST test set (its two digits, if binary)."""
    refuse_unused(options, "mnist evaluate (it reads the IDX files in --data-dir)", "data")
    x, y = load_test_split(options.data_dir, meta.get("digits"))
    probs = probabilities(model, normalize(x, meta.get("normalization")), options.batch_size)
    return {"accuracy": accuracy(probs, y), "loss": nll(probs, y), "samples": len(y)}


# ---------------------------------------------------------------- predict
def predict(
    model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions
) -> list[dict[str, Any]]:
    """One record per image file or test index: predicted class, its probability, all probabilities.

    (torchlab.predict writes the records to <out>/predictions.<format> when asked.)
    """
    from torchlab.data.mnist_image import image_to_mnist

    refuse_unused(options, "mnist predict", "data", "submission", "boxes", "detect")
    classes = meta["classes"]
    rows: list[tuple[str, torch.Tensor, str | None]] = []
    if options.index:
        x_test, y_test = load_test_split(options.data_dir, meta.get("digits"))
        for index in options.index:
            if not 0 <= index < len(y_test):
                raise UsageError(f"--index must be in 0..{len(y_test) - 1} (the MNIST test set), got {index}")
            rows.append((f"test[{index}]", x_test[index], classes[int(y_test[index])]))
    for path in inputs:
        rows.append((path, torch.from_numpy(image_to_mnist(path)).unsqueeze(0), None))
    if not rows:
        raise UsageError("give an image path (PNG/JPG of one digit) or --index N into the test set")
    x = normalize(torch.stack([image for _, image, _ in rows]), meta.get("normalization"))
    probs = probabilities(model, x, options.batch_size).numpy()
    records = []
    for (label, _, true), p in zip(rows, probs):
        best = int(p.argmax())
        records.append(
            {
                "input": label,
                "prediction": classes[best],
                "probability": float(p[best]),
                "true": true,
                "probabilities": {c: round(float(v), 4) for c, v in zip(classes, p)},
            }
        )
    return records


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` test images in --data-dir (the checkpoint's digits), normalized as in training."""
    x, _ = load_test_split(options.data_dir, meta.get("digits"))
    return normalize(x[:count], meta.get("normalization"))
