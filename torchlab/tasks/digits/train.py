"""How `digits` trains its digit-mlp: data, model, loss, optimizer and Trainer from a DigitsConfig
(tasks/digits/config.py).

evaluate/predict are in infer.py, the figures in plots.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from torchlab.data.batcher import TensorBatcher
from torchlab.data.digits import PIXEL_SCALE, load_digits_split
from torchlab.data.splits import split_indices
from torchlab.engine.checkpoint import add_metrics
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import Accuracy, accuracy
from torchlab.engine.optim import make_optimizer
from torchlab.models import build_model
from torchlab.models.digits import DigitMLP
from torchlab.runtime.device import one_cpu_thread
from torchlab.runtime.guards import check_memory
from torchlab.tasks.digits.config import DigitsConfig
from torchlab.tasks.run import Run, RunResult

NORMALIZATION = {"divide_by": PIXEL_SCALE, "input": "load_digits pixels 0..16"}  # what a checkpoint's model takes


def make_model(cfg: DigitsConfig, x_train: torch.Tensor) -> tuple[nn.Module, dict[str, Any]]:
    """(model, its constructor arguments): standardized with `x_train`'s pixels and started from
    N(0, init_std^2) weights when the config says so."""
    model_kwargs: dict[str, Any] = {"hidden": cfg.hidden}
    if cfg.standardize or cfg.input_noise:  # older checkpoints have neither key: they load as before
        model_kwargs.update(standardize=cfg.standardize, input_noise=cfg.input_noise)
    model = cast(DigitMLP, build_model(cfg.model, **model_kwargs))
    if cfg.standardize:
        model.fit_standardization(x_train)
    if cfg.init_std:
        model.init_like_seed(cfg.init_std)
    return model, model_kwargs


def train(cfg: DigitsConfig, run: Run) -> RunResult:
    """Train the digit MLP, write best.pt/last.pt/history.csv and figures; return the run's result."""
    data = load_digits_split()
    # weights, gradients and two AdamW states (16 bytes per parameter), three activations per sample and unit
    params = (64 + 1 + 10) * cfg.hidden + 10
    check_memory(
        16 * params + 12 * cfg.hidden * len(data.x_train), f"--hidden {cfg.hidden}", "lower --hidden", run.device
    )
    x_train, y_train = data.x_train, data.y_train
    val = None
    if cfg.val_fraction > 0:
        keep, hold = split_indices(len(x_train), cfg.val_fraction, seed=run.seed)
        val = TensorBatcher((x_train[hold], y_train[hold]), 4096, device=run.device)
        x_train, y_train = x_train[keep], y_train[keep]
    full_batch = cfg.batch_size is None
    batches = TensorBatcher(
        (x_train, y_train), cfg.batch_size, shuffle=not full_batch, device=run.device, seed=run.seed
    )

    model, model_kwargs = make_model(cfg, x_train)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
    trainer = run.trainer(
        model,
        nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        optimizer,
        metrics={"accuracy": Accuracy()},
        monitor="val_loss" if val is not None else "train_loss",
        scheduler=scheduler,
        scheduler_interval=interval,
        meta={
            "model_name": cfg.model,
            "model_kwargs": model_kwargs,
            "normalization": NORMALIZATION,
            "classes": list(range(10)),
        },
    )
    with one_cpu_thread(run.device):  # a 2,410-parameter net: a second thread only adds hand-offs
        fit = trainer.fit(batches, val, resume=run.resume)
    probs = predict_outputs(model, data.x_test).softmax(dim=1)
    test_acc = accuracy(probs, data.y_test)
    summary: dict[str, Any] = {
        "task": run.task,
        "model": cfg.model,
        "recipe": run.recipe,
        "device": str(run.device),
        "epochs": fit.epochs_run,
        "fit_seconds": round(fit.fit_seconds, 3),
        "test_accuracy": test_acc,
        "checkpoint": str(run.out / "best.pt"),
    }
    figures: list[Path] = []
    if run.is_main:
        add_metrics(run.out / "best.pt", {"test_accuracy": test_acc})
        if run.figures:
            from torchlab.tasks.digits.plots import write_digit_figures

            figures = write_digit_figures(fit.history, data, probs.numpy(), run.out / "figures")
            summary["figures"] = str(run.out / "figures")
    return run.result(fit, summary, figures)
