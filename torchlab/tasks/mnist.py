"""How `mnist` trains, evaluates and predicts; its settings and recipes are in torchlab/recipes/mnist.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.checkpoint import add_metrics
from torchlab.data.batcher import TensorBatcher, split_indices
from torchlab.data.mnist import (
    MnistData,
    check_files,
    load_mnist,
    load_split,
    normalization_stats,
    random_affine,
)
from torchlab.errors import UsageError
from torchlab.guards import refuse_unused
from torchlab.inference import class_probabilities, predict_outputs
from torchlab.metrics import Accuracy, BinaryAccuracy, accuracy, nll
from torchlab.models import build_model
from torchlab.recipes.mnist import CARD, RECIPES, MnistConfig
from torchlab.records import format_digit_prediction
from torchlab.tasks import register_task
from torchlab.tasks.base import InferenceOptions, Run, RunResult, TaskSpec, make_optimizer

__all__ = ["MnistConfig", "RECIPES", "train", "evaluate", "predict"]

EVAL_BATCH = 2000



VAL_SHARE = 12  # by default one training image in 12 is held out: 5,000 of MNIST's 60,000


# ---------------------------------------------------------------- the pieces
def hold_out(x: torch.Tensor, y: torch.Tensor, val_size: int, seed: int = 0
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(x_train, y_train, x_val, y_val): `val_size` random samples held out (None, None when 0)."""
    if val_size <= 0:
        return x, y, None, None
    if val_size >= len(x):
        raise UsageError(f"--val-size {val_size} leaves no training images (there are {len(x)})")
    keep, hold = split_indices(len(x), val_size / len(x), seed=seed)
    return x[keep], y[keep], x[hold], y[hold]


def normalise(x: torch.Tensor, normalization: dict[str, Any] | None) -> torch.Tensor:
    """(x - mean) / std with the checkpoint's normalisation (none: x as it is)."""
    norm = normalization or {"mean": 0.0, "std": 1.0}
    return (x - float(norm["mean"])) / float(norm["std"])


def model_arguments(cfg: MnistConfig, classes: int) -> dict[str, Any]:
    """Constructor arguments of `cfg.model` (plain data: they go into the checkpoint)."""
    kwargs: dict[str, Any] = {"classes": classes}
    if cfg.model == "mnist-cnn":
        kwargs["channels"] = [int(c) for c in cfg.channels]
    if cfg.model in ("mnist-mlp", "mnist-tiny-cnn", "mnist-simple-cnn") and cfg.hidden:
        kwargs["hidden"] = int(cfg.hidden)
    if cfg.model == "mnist-mlp" and cfg.activation:
        kwargs["activation"] = cfg.activation
    return kwargs


def make_model(cfg: MnistConfig, classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """(model, its constructor arguments), initialised from N(0, init^2) when the config says so."""
    kwargs = model_arguments(cfg, classes)
    model = build_model(cfg.model, **kwargs)
    if cfg.init:
        from torchlab.models.mnist import init_normal

        init_normal(model, cfg.init)
    return model, kwargs


def make_loss(classes: int, kind: str = "default", label_smoothing: float = 0.0):
    """Cross-entropy for 10 classes; for one logit binary cross-entropy, or the post's mean |target - sigmoid|."""
    if classes > 1:
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if kind == "post":
        def post_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            p = output.reshape(-1).float().sigmoid()
            return torch.where(target == 1, 1 - p, p).mean()
        return post_loss
    bce = nn.BCEWithLogitsLoss()
    return lambda output, target: bce(output.reshape(-1).float(), target)


def augment_batch(batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """TensorBatcher transform: random affine moves of the images, targets unchanged."""
    return (random_affine(batch[0], generator),) + tuple(batch[1:])


def probabilities(model: nn.Module, x: torch.Tensor, batch_size: int | None = EVAL_BATCH) -> torch.Tensor:
    """(n, classes) probabilities on the CPU; a one-logit model gives columns (1 - p, p)."""
    return class_probabilities(predict_outputs(model, x, batch_size))


def write_figures(history: list[dict[str, float]], model: nn.Module, data: MnistData, probs: torch.Tensor,
                  normalization: dict[str, Any], folder: Path, title: str = "mnist") -> list[Path]:
    """Curves, confusion matrix, mistakes, filters and feature maps of a finished run, in `folder`."""
    from torchlab.plots.mnist import write_mnist_figures

    return write_mnist_figures(history, model, data, probs, lambda x: normalise(x, normalization), folder, title)


# ------------------------------------------------------------------ train
def train(cfg: MnistConfig, run: Run) -> RunResult:
    """Train `cfg.model` on MNIST, write best.pt/last.pt/history.csv and figures; return the run's result."""
    if not cfg.download:
        check_files(cfg.data_dir)  # a missing or broken file fails before anything is written
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_mnist(cfg.data_dir, cfg.digits, cfg.limit, download=cfg.download and run.is_main)
    val_size = cfg.val_size if cfg.val_size is not None else round(len(data.x_train) / VAL_SHARE)
    x_train, y_train, x_val, y_val = hold_out(data.x_train, data.y_train, val_size, run.seed)
    mean, std = normalization_stats(x_train) if cfg.normalize else (0.0, 1.0)
    normalization = {"mean": mean, "std": std, "input": "pixels / 255"}

    model, model_kwargs = make_model(cfg, data.classes)
    batches = TensorBatcher((normalise(x_train, normalization), y_train), cfg.batch_size, shuffle=True,
                            device=run.device, seed=run.seed, transform=augment_batch if cfg.augment else None)
    val = None
    if x_val is not None:
        val = TensorBatcher((normalise(x_val, normalization), y_val), EVAL_BATCH, device=run.device)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
    trainer = run.trainer(
        model, make_loss(data.classes, cfg.loss, cfg.label_smoothing), optimizer,
        metrics={"accuracy": Accuracy() if data.classes > 1 else BinaryAccuracy()},
        monitor="val_loss" if val is not None else "train_loss", scheduler=scheduler, scheduler_interval=interval,
        meta={"model_name": cfg.model, "model_kwargs": model_kwargs, "normalization": normalization,
              "digits": list(data.digits) if data.digits else None, "classes": data.class_names(),
              "train_samples": len(x_train)},
    )
    fit = trainer.fit(batches, val, resume=run.resume)
    probs = probabilities(model, normalise(data.x_test, normalization))
    test_accuracy = accuracy(probs, data.y_test)
    summary: dict[str, Any] = {
        "task": run.task, "model": cfg.model, "recipe": run.recipe, "device": str(run.device),
        "train_samples": len(x_train), "epochs": fit.epochs_run, "fit_seconds": round(fit.fit_seconds, 2),
    }
    if "val_accuracy" in fit.last:
        summary["val_accuracy"] = fit.last["val_accuracy"]
    summary.update(test_accuracy=round(test_accuracy, 4), checkpoint=str(run.out / "best.pt"))
    figures: list[Path] = []
    if run.is_main:
        add_metrics(run.out / "best.pt", {"test_accuracy": test_accuracy})
        if run.figures:
            figures = write_figures(fit.history, model, data, probs, normalization, run.out / "figures", cfg.model)
            summary["figures"] = str(run.out / "figures")
    return run.result(fit, summary, figures)


# --------------------------------------------------------------- evaluate
def load_test_split(data_dir: str, meta: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images (n, 1, 28, 28) in [0, 1] and targets, restricted to the checkpoint's digits."""
    images, labels = load_split(data_dir, "test")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    digits = meta.get("digits")
    if digits:
        keep = torch.from_numpy((labels == digits[0]) | (labels == digits[1]))
        return x[keep], torch.from_numpy((labels[keep.numpy()] == digits[1]).astype(np.int64))
    return x, torch.from_numpy(labels)


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """Accuracy and loss of a checkpoint's model on the MNIST test set (its two digits, if binary)."""
    refuse_unused(options, "mnist evaluate (it reads the IDX files in --data-dir)", "data")
    x, y = load_test_split(options.data_dir, meta)
    probs = probabilities(model, normalise(x, meta.get("normalization")), options.batch_size)
    return {"accuracy": accuracy(probs, y), "loss": nll(probs, y), "samples": len(y)}


# ---------------------------------------------------------------- predict
def predict(model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions) -> list[dict[str, Any]]:
    """One record per image file or test index: predicted class, its probability, all probabilities.

    (torchlab.predict writes the records to <out>/predictions.<format> when asked.)
    """
    from torchlab.data.mnist_image import image_to_mnist

    refuse_unused(options, "mnist predict", "data", "submission", "boxes", "detect")
    classes = meta["classes"]
    rows: list[tuple[str, torch.Tensor, str | None]] = []
    if options.index:
        x_test, y_test = load_test_split(options.data_dir, meta)
        for index in options.index:
            if not 0 <= index < len(y_test):
                raise UsageError(f"--index must be in 0..{len(y_test) - 1} (the MNIST test set), got {index}")
            rows.append((f"test[{index}]", x_test[index], classes[int(y_test[index])]))
    for path in inputs:
        rows.append((path, torch.from_numpy(image_to_mnist(path)).unsqueeze(0), None))
    if not rows:
        raise UsageError("give an image path (PNG/JPG of one digit) or --index N into the test set")
    x = normalise(torch.stack([image for _, image, _ in rows]), meta.get("normalization"))
    probs = probabilities(model, x, options.batch_size).numpy()
    records = []
    for (label, _, true), p in zip(rows, probs):
        best = int(p.argmax())
        records.append({"input": label, "prediction": classes[best], "probability": float(p[best]), "true": true,
                        "probabilities": {c: round(float(v), 4) for c, v in zip(classes, p)}})
    return records


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` test images in --data-dir (the checkpoint's digits), normalised as in training."""
    x, _ = load_test_split(options.data_dir, meta)
    return normalise(x[:count], meta.get("normalization"))


register_task(TaskSpec.from_card(CARD, train=train, evaluate=evaluate, predict=predict,
                                 format_prediction=format_digit_prediction, example_inputs=example_inputs))
