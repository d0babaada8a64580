"""`torchlab train digit-mlp`: the 64->32->10 MLP on scikit-learn's 8x8 digits.

Two recipes:
  default  AdamW + one-cycle LR, mini-batches of 64, label smoothing 0.1 -> ~0.98 test accuracy in < 1 s.
  seed     the notebook's loop: full-batch gradient descent, lr 0.1, 100 steps, N(0, 0.1^2) weights.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.checkpoint import add_metrics
from torchlab.data.batcher import TensorBatcher, split_indices
from torchlab.data.digits import PIXEL_SCALE, load_digits_split
from torchlab.device import one_cpu_thread
from torchlab.errors import UsageError
from torchlab.metrics import Accuracy
from torchlab.models import build_model
from torchlab.tasks import register_task
from torchlab.tasks.base import Task


class DigitMLPTask(Task):
    name = "digit-mlp"
    help = "64->32->10 MLP on scikit-learn's bundled 8x8 digits (the demo)"
    recipes = {
        "default": {"epochs": 20, "lr": 3e-2, "batch_size": 64, "weight_decay": 1e-4, "patience": None,
                    "label_smoothing": 0.1, "val_fraction": 0.1},
        "seed": {"epochs": 100, "lr": 0.1, "batch_size": None, "weight_decay": 0.0, "patience": None,
                 "label_smoothing": 0.0, "val_fraction": 0.0},
    }

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--hidden", type=int, default=32, help="hidden units (default: 32, as the seed)")
        parser.add_argument("--val-fraction", type=float, default=None,
                            help="share of the training split held out for validation (default recipe: 0.1, seed: 0)")

    def train(self, args: argparse.Namespace) -> dict[str, Any]:
        if args.hidden < 1:
            raise UsageError(f"--hidden must be >= 1, got {args.hidden}")
        ctx = self.context(args)
        hp = ctx.hparams
        val_fraction = hp["val_fraction"] if args.val_fraction is None else args.val_fraction
        if not 0.0 <= val_fraction < 0.5:
            raise UsageError(f"--val-fraction must be in [0, 0.5), got {val_fraction}")
        data = load_digits_split()
        x_train, y_train = data.x_train, data.y_train
        x_val = y_val = None
        if val_fraction > 0:
            keep, hold = split_indices(len(x_train), val_fraction, seed=ctx.seed)
            x_val, y_val = x_train[hold], y_train[hold]
            x_train, y_train = x_train[keep], y_train[keep]

        model_kwargs = {"hidden": args.hidden}
        model = build_model("digit-mlp", **model_kwargs)
        seed_recipe = ctx.recipe == "seed"
        if seed_recipe:
            model.init_like_seed(0.1)
            optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
            scheduler = None
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
            steps = len(TensorBatcher((x_train,), hp["batch_size"], shard=True))
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp["lr"], total_steps=hp["epochs"] * steps)

        train = TensorBatcher((x_train, y_train), hp["batch_size"], shuffle=not seed_recipe, device=ctx.device, seed=ctx.seed)
        val = TensorBatcher((x_val, y_val), 4096, device=ctx.device) if x_val is not None else None
        loss_fn = nn.CrossEntropyLoss(label_smoothing=hp["label_smoothing"])
        has_val = val is not None
        trainer = self.make_trainer(
            ctx, args, model, loss_fn, optimizer,
            metrics={"accuracy": Accuracy()},
            monitor="val_loss" if has_val else "train_loss",
            scheduler=scheduler, scheduler_interval="batch",
            meta={"model_name": "digit-mlp", "model_kwargs": model_kwargs,
                  "normalization": {"divide_by": PIXEL_SCALE, "input": "load_digits pixels 0..16"},
                  "classes": list(range(10))},
        )
        with one_cpu_thread(ctx.device):  # a 2,410-parameter net: a second thread only adds hand-offs
            result = trainer.fit(train, val, resume=ctx.resume)
        test_acc, probs = _test_accuracy(model, data.x_test, data.y_test, ctx.device)
        summary: dict[str, Any] = {
            "task": self.name, "recipe": ctx.recipe, "device": str(ctx.device),
            "epochs": result.epochs_run, "fit_seconds": round(result.fit_seconds, 3),
            "test_accuracy": round(test_acc, 4), "checkpoint": str(ctx.out / "best.pt"),
        }
        if ctx.is_main:
            add_metrics(ctx.out / "best.pt", {"test_accuracy": test_acc})
            if ctx.figures:
                summary["figures"] = str(self.write_figures(result.history, data, probs, ctx.out / "figures"))
        return summary

    def write_figures(self, history, data, probs: np.ndarray, folder) -> Any:
        from torchlab.plots.common import plot_confusion_matrix, plot_history
        from torchlab.plots.digits import plot_misclassified, plot_prediction

        true = data.y_test.numpy()
        pred = probs.argmax(axis=1)
        plot_history(history, folder / "loss.png", title="digit-mlp")
        plot_prediction(data.images_test[0], probs[0], int(true[0]), 0, folder / "prediction.png")
        plot_misclassified(data.images_test, probs, true, np.arange(len(true)), folder / "misclassified.png")
        plot_confusion_matrix(true, pred, folder / "confusion.png", title=f"digit-mlp test set (accuracy {np.mean(true == pred):.4f})")
        return folder

    def evaluate(self, model, meta, args) -> dict[str, float]:
        data = load_digits_split()
        device = next(model.parameters()).device
        acc, probs = _test_accuracy(model, data.x_test, data.y_test, device)
        loss = nn.functional.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-12)), data.y_test).item()
        return {"accuracy": acc, "loss": loss, "samples": len(data.y_test)}

    def predict(self, model, meta, inputs, args) -> str:
        from torchlab.data.digits_image import image_to_digit_features

        rows: list[tuple[str, np.ndarray]] = []
        data = None
        for index in args.index or []:
            data = data or load_digits_split()
            if not 0 <= index < len(data.y_test):
                raise UsageError(f"--index must be in 0..{len(data.y_test) - 1} (the digits test split), got {index}")
            rows.append((f"test[{index}] (true {int(data.y_test[index])})", data.x_test[index].numpy()))
        for path in inputs:
            rows.append((path, image_to_digit_features(path) / PIXEL_SCALE))
        if not rows:
            raise UsageError("give an image path or --index N")
        device = next(model.parameters()).device
        x = torch.from_numpy(np.stack([features for _, features in rows])).float().to(device)
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=1).cpu().numpy()
        lines = []
        for (label, _), p in zip(rows, probs):
            lines.append(f"{label}: class {int(p.argmax())}")
            lines.append("  probabilities: " + " ".join(f"{c}:{v:.3f}" for c, v in enumerate(p)))
        return "\n".join(lines)


def _test_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device) -> tuple[float, np.ndarray]:
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(x.to(device)), dim=1).cpu()
    return float((probs.argmax(1) == y).float().mean()), probs.numpy()


register_task(DigitMLPTask())
