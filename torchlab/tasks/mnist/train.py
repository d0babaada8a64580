"""How `mnist` trains: data, model, loss, optimizer and Trainer from an MnistConfig (tasks/mnist/config.py).

evaluate/predict are in infer.py, the figures in plots.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.data.batcher import TensorBatcher
from torchlab.data.mnist import (
    check_files,
    load_mnist,
    normalization_stats,
    random_affine,
)
from torchlab.data.splits import hold_out, normalize
from torchlab.engine.checkpoint import add_metrics
from torchlab.engine.metrics import Accuracy, BinaryAccuracy, accuracy
from torchlab.engine.optim import make_optimizer
from torchlab.models import build_model
from torchlab.tasks.mnist.config import MnistConfig
from torchlab.tasks.mnist.infer import EVAL_BATCH, probabilities
from torchlab.tasks.run import Run, RunResult

VAL_SHARE = 12  # by default one training image in 12 is held out: 5,000 of MNIST's 60,000


# ---------------------------------------------------------------- the pieces
def model_arguments(cfg: MnistConfig, classes: int) -> dict[str, Any]:
    """Constructor arguments of `cfg.model` (plain data: they go into the checkpoint)."""
    kwargs: dict[str, Any] = {"classes": classes}
    if cfg.model == "mnist-cnn":
        kwargs["channels"] = [int(c) for c in cfg.channels]
    if cfg.model in ("mnist-mlp", "mnist-tiny-cnn", "mnist-simple-cnn", "mnist-fast") and cfg.hidden:
        kwargs["hidden"] = int(cfg.hidden)
    if cfg.model == "mnist-mlp" and cfg.activation:
        kwargs["activation"] = cfg.activation
    return kwargs


def make_model(cfg: MnistConfig, classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """(model, its constructor arguments), initialized from N(0, init^2) when the config says so."""
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


def make_mnist_optimizer(model: nn.Module, cfg: MnistConfig, steps_per_epoch: int):
    """The config's optimizer and schedule (engine/optim.py's make_optimizer), with its Adam `beta2` when set.

    One-cycle sets beta1 at every step (its momentum cycle), so beta2 is the one Adam decay a recipe sets.
    """
    optimizer, scheduler, interval = make_optimizer(model, cfg, steps_per_epoch)
    if cfg.beta2 is not None:
        for group in optimizer.param_groups:
            group["betas"] = (group["betas"][0], cfg.beta2)
    return optimizer, scheduler, interval


def augment_batch(batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """TensorBatcher transform: random affine moves of the images, targets unchanged."""
    return (random_affine(batch[0], generator),) + tuple(batch[1:])


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
    batches = TensorBatcher(
        (normalize(x_train, normalization), y_train),
        cfg.batch_size,
        shuffle=True,
        device=run.device,
        seed=run.seed,
        transform=augment_batch if cfg.augment else None,
    )
    val = None
    if x_val is not None and y_val is not None:  # both or neither
        val = TensorBatcher((normalize(x_val, normalization), y_val), EVAL_BATCH, device=run.device)
    optimizer, scheduler, interval = make_mnist_optimizer(model, cfg, len(batches))
    trainer = run.trainer(
        model,
        make_loss(data.classes, cfg.loss, cfg.label_smoothing),
        optimizer,
        metrics={"accuracy": Accuracy() if data.classes > 1 else BinaryAccuracy()},
        monitor="val_loss" if val is not None else "train_loss",
        scheduler=scheduler,
        scheduler_interval=interval,
        meta={
            "model_name": cfg.model,
            "model_kwargs": model_kwargs,
            "normalization": normalization,
            "digits": list(data.digits) if data.digits else None,
            "classes": data.class_names(),
            "train_samples": len(x_train),
        },
    )
    fit = trainer.fit(batches, val, resume=run.resume)
    probs = probabilities(model, normalize(data.x_test, normalization))
    test_accuracy = accuracy(probs, data.y_test)
    summary: dict[str, Any] = {
        "task": run.task,
        "model": cfg.model,
        "recipe": run.recipe,
        "device": str(run.device),
        "train_samples": len(x_train),
        "epochs": fit.epochs_run,
        "fit_seconds": round(fit.fit_seconds, 2),
    }
    if "val_accuracy" in fit.last:
        summary["val_accuracy"] = fit.last["val_accuracy"]
    summary.update(test_accuracy=round(test_accuracy, 4), checkpoint=str(run.out / "best.pt"))
    figures: list[Path] = []
    if run.is_main:
        add_metrics(run.out / "best.pt", {"test_accuracy": test_accuracy})
        if run.figures:
            from torchlab.tasks.mnist.plots import write_mnist_figures

            figures = write_mnist_figures(
                fit.history, model, data, probs, normalization, run.out / "figures", cfg.model
            )
            summary["figures"] = str(run.out / "figures")
    return run.result(fit, summary, figures)
