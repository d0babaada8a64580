"""How `digit-mlp` trains, evaluates and predicts; its settings and recipes are in torchlab/recipes/digits.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.checkpoint import add_metrics
from torchlab.data.batcher import TensorBatcher, split_indices
from torchlab.data.digits import PIXEL_SCALE, DigitsSplit, load_digits_split
from torchlab.device import one_cpu_thread
from torchlab.errors import DataError, UsageError
from torchlab.guards import check_memory, refuse_unused, require_regular_file
from torchlab.inference import predict_outputs
from torchlab.metrics import Accuracy, accuracy, nll
from torchlab.models import build_model
from torchlab.recipes.digits import CARD, RECIPES, DigitsConfig
from torchlab.records import format_digit_prediction
from torchlab.tasks import register_task
from torchlab.tasks.base import InferenceOptions, Run, RunResult, TaskSpec, make_optimizer

__all__ = ["DigitsConfig", "RECIPES", "train", "evaluate", "predict"]


def train(cfg: DigitsConfig, run: Run) -> RunResult:
    """Train the digit MLP, write best.pt/last.pt/history.csv and figures; return the run's result."""
    data = load_digits_split()
    # weights, gradients and two AdamW states (16 bytes per parameter), three activations per sample and unit
    params = (64 + 1 + 10) * cfg.hidden + 10
    check_memory(16 * params + 12 * cfg.hidden * len(data.x_train), f"--hidden {cfg.hidden}", "lower --hidden",
                 run.device)
    x_train, y_train = data.x_train, data.y_train
    val = None
    if cfg.val_fraction > 0:
        keep, hold = split_indices(len(x_train), cfg.val_fraction, seed=run.seed)
        val = TensorBatcher((x_train[hold], y_train[hold]), 4096, device=run.device)
        x_train, y_train = x_train[keep], y_train[keep]
    full_batch = cfg.batch_size is None
    batches = TensorBatcher((x_train, y_train), cfg.batch_size, shuffle=not full_batch, device=run.device, seed=run.seed)

    model_kwargs: dict[str, Any] = {"hidden": cfg.hidden}
    if cfg.standardize or cfg.input_noise:  # older checkpoints have neither key: they load as before
        model_kwargs.update(standardize=cfg.standardize, input_noise=cfg.input_noise)
    model = build_model("digit-mlp", **model_kwargs)
    if cfg.standardize:
        model.fit_standardization(x_train)
    if cfg.init_std:
        model.init_like_seed(cfg.init_std)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
    trainer = run.trainer(
        model, nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), optimizer,
        metrics={"accuracy": Accuracy()}, monitor="val_loss" if val is not None else "train_loss",
        scheduler=scheduler, scheduler_interval=interval,
        meta={"model_name": "digit-mlp", "model_kwargs": model_kwargs,
              "normalization": {"divide_by": PIXEL_SCALE, "input": "load_digits pixels 0..16"},
              "classes": list(range(10))},
    )
    with one_cpu_thread(run.device):  # a 2,410-parameter net: a second thread only adds hand-offs
        fit = trainer.fit(batches, val, resume=run.resume)
    probs = predict_outputs(model, data.x_test).softmax(dim=1)
    test_acc = accuracy(probs, data.y_test)
    summary: dict[str, Any] = {
        "task": run.task, "recipe": run.recipe, "device": str(run.device),
        "epochs": fit.epochs_run, "fit_seconds": round(fit.fit_seconds, 3),
        "test_accuracy": test_acc, "checkpoint": str(run.out / "best.pt"),
    }
    figures: list[Path] = []
    if run.is_main:
        add_metrics(run.out / "best.pt", {"test_accuracy": test_acc})
        if run.figures:
            figures = write_figures(fit.history, data, probs.numpy(), run.out / "figures")
            summary["figures"] = str(run.out / "figures")
    return run.result(fit, summary, figures)


def write_figures(history: list[dict[str, float]], data: DigitsSplit, probs: np.ndarray, folder: Path) -> list[Path]:
    """Loss curves, one prediction, the misclassified test digits and the confusion matrix."""
    from torchlab.plots.common import plot_confusion_matrix, plot_history
    from torchlab.plots.digits import plot_misclassified, plot_prediction

    true = data.y_test.numpy()
    pred = probs.argmax(axis=1)
    paths = [folder / name for name in ("loss.png", "prediction.png", "misclassified.png", "confusion.png")]
    plot_history(history, paths[0], title="digit-mlp")
    plot_prediction(data.images_test[0], probs[0], int(true[0]), 0, paths[1])
    plot_misclassified(data.images_test, probs, true, np.arange(len(true)), paths[2])
    plot_confusion_matrix(true, pred, paths[3], title=f"digit-mlp test set (accuracy {np.mean(true == pred):.4f})")
    return paths


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """Accuracy and loss of a checkpoint's model on the digits test split."""
    refuse_unused(options, "digit-mlp evaluate (its data is scikit-learn's bundled digits)", "data")
    data = load_digits_split()
    probs = predict_outputs(model, data.x_test, options.batch_size).softmax(dim=1)
    return {"accuracy": accuracy(probs, data.y_test), "loss": nll(probs, data.y_test), "samples": len(data.y_test)}


def predict(model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions) -> list[dict[str, Any]]:
    """One record per image file or test index: predicted class, its probability, all probabilities."""
    from torchlab.data.digits_image import image_to_digit_features

    refuse_unused(options, "digit-mlp predict", "data", "submission", "boxes", "detect")
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
    return [{"input": label, "prediction": int(p.argmax()), "probability": float(p.max()), "true": true,
             "probabilities": {str(c): round(float(v), 4) for c, v in enumerate(p)}}
            for (label, _, true), p in zip(rows, probs)]


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` digits of the test split, as the model takes them (pixels / 16)."""
    return load_digits_split().x_test[:count]


register_task(TaskSpec.from_card(CARD, train=train, evaluate=evaluate, predict=predict,
                                 format_prediction=format_digit_prediction, example_inputs=example_inputs))
