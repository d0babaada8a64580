"""`torchlab train mnist`: MNIST classifiers, 10 classes or a binary pair of digits.

    torchlab train mnist --data-dir ../shared/data/mnist                       # mnist-cnn, >= 99% test accuracy
    torchlab train mnist --model mnist-linear --digits 4 5 --recipe post       # the post's linear "is it a 5?"
    torchlab train mnist --model mnist-tiny-cnn --recipe assignment            # the assignment's 0-vs-1 CNN
    torchlab evaluate checkpoints/mnist/best.pt --data-dir ../shared/data/mnist
    torchlab predict checkpoints/mnist/best.pt digit.png --index 0

Recipes:
  default     AdamW + one-cycle LR, batches of 128, 3 epochs, 5,000 training images held out for validation.
  long        a wider mnist-cnn (32-64-128), random affine augmentation, label smoothing, 12 epochs.
  post        the post's loop: full-batch gradient descent, lr 1, 100 steps, its loss mean(|target - sigmoid|),
              N(0, 1) weights; digits 4 and 5 ("is it a 5?") and mnist-linear unless told otherwise.
  assignment  the assignment's loop: SGD lr 0.01, batches of 32, 5 epochs, binary cross-entropy, N(0, 1)
              weights; the first 1,000 training images of 0 and 1, mnist-tiny-cnn unless told otherwise.

The training images live on the device in a TensorBatcher; normalisation (mean and std of the
training pixels), the digits and the class names go into the checkpoint for evaluate/predict.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.checkpoint import add_metrics
from torchlab.data.batcher import TensorBatcher, split_indices
from torchlab.data.mnist import check_files, load_mnist, load_split, normalization_stats, random_affine, validate_digits
from torchlab.errors import UsageError
from torchlab.metrics import Accuracy, BinaryAccuracy
from torchlab.models import build_model
from torchlab.tasks import register_task
from torchlab.tasks.base import Task

MODELS = ("mnist-cnn", "mnist-simple-cnn", "mnist-tiny-cnn", "mnist-mlp", "mnist-linear")
CONV_MODELS = ("mnist-cnn", "mnist-simple-cnn", "mnist-tiny-cnn")
EVAL_BATCH = 2000


class MnistTask(Task):
    name = "mnist"
    help = "MNIST digits: linear, MLP and CNN classifiers (10 classes or --digits A B)"
    recipes = {
        "default": {"epochs": 3, "lr": 2e-2, "batch_size": 128, "weight_decay": 1e-2, "patience": None,
                    "model": "mnist-cnn", "channels": [8, 16, 32], "optimizer": "adamw", "one_cycle": True,
                    "loss": "default", "label_smoothing": 0.0, "augment": False, "val_size": 5000,
                    "normalize": True, "init": None, "digits": None, "limit": None},
        "long": {"epochs": 12, "lr": 1e-2, "batch_size": 128, "weight_decay": 5e-2, "patience": None,
                 "model": "mnist-cnn", "channels": [32, 64, 128], "optimizer": "adamw", "one_cycle": True,
                 "loss": "default", "label_smoothing": 0.1, "augment": True, "val_size": 5000,
                 "normalize": True, "init": None, "digits": None, "limit": None},
        "post": {"epochs": 100, "lr": 1.0, "batch_size": None, "weight_decay": 0.0, "patience": None,
                 "model": "mnist-linear", "channels": [8, 16, 32], "optimizer": "sgd", "one_cycle": False,
                 "loss": "post", "label_smoothing": 0.0, "augment": False, "val_size": 0,
                 "normalize": False, "init": 1.0, "digits": [4, 5], "limit": None},
        "assignment": {"epochs": 5, "lr": 1e-2, "batch_size": 32, "weight_decay": 0.0, "patience": None,
                       "model": "mnist-tiny-cnn", "channels": [8, 16, 32], "optimizer": "sgd", "one_cycle": False,
                       "loss": "default", "label_smoothing": 0.0, "augment": False, "val_size": 0,
                       "normalize": False, "init": 1.0, "digits": [0, 1], "limit": 1000},
    }

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        d = parser.add_argument_group("data")
        d.add_argument("--data-dir", default="data", help="folder with the MNIST IDX files, flat or <dir>/MNIST/raw/ (default: data/)")
        d.add_argument("--download", action="store_true", help="download MNIST into --data-dir with torchvision first")
        d.add_argument("--digits", type=int, nargs=2, metavar=("A", "B"),
                       help="binary task on two digits: target 1 for B, 0 for A (e.g. --digits 4 5)")
        d.add_argument("--limit", type=int, help="use only the first N training images (after --digits)")
        d.add_argument("--val-size", type=int, help="training images held out for validation (default recipe: 5000)")
        d.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="random shifts, turns and zooms of the training images (default: from the recipe)")
        m = parser.add_argument_group("model")
        m.add_argument("--model", choices=MODELS, help="which classifier (default: from the recipe, mnist-cnn)")
        m.add_argument("--channels", type=int, nargs=3, metavar="C", help="mnist-cnn widths (default recipe: 8 16 32)")
        m.add_argument("--hidden", type=int, help="hidden units of mnist-mlp (50), mnist-tiny-cnn (8), mnist-simple-cnn (64)")
        m.add_argument("--activation", choices=("sigmoid", "relu"), help="mnist-mlp's hidden activation (default: sigmoid)")
        m.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing (10 classes only)")
        m.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
        m.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA (on by default there)")

    # ------------------------------------------------------------------ train
    def train(self, args: argparse.Namespace) -> dict[str, Any]:
        recipe = self.recipes.get(args.recipe or "default", self.recipes["default"])
        settings = resolve_settings(recipe, args)
        ctx = self.context(args)  # checks the common flags; writes nothing
        if not args.download:
            check_files(args.data_dir)  # a missing or broken file fails before anything is written
        hp = ctx.hparams
        if settings["threads"]:
            torch.set_num_threads(settings["threads"])
        data = load_mnist(args.data_dir, settings["digits"], settings["limit"], download=args.download and ctx.is_main)
        x_train, y_train = data.x_train, data.y_train
        x_val = y_val = None
        if settings["val_size"] > 0:
            if settings["val_size"] >= len(x_train):
                raise UsageError(f"--val-size {settings['val_size']} leaves no training images (there are {len(x_train)})")
            keep, hold = split_indices(len(x_train), settings["val_size"] / len(x_train), seed=ctx.seed)
            x_val, y_val = x_train[hold], y_train[hold]
            x_train, y_train = x_train[keep], y_train[keep]
        mean, std = normalization_stats(x_train) if settings["normalize"] else (0.0, 1.0)
        normalise = lambda x: (x - mean) / std  # noqa: E731

        model_name = settings["model"]
        model_kwargs = model_arguments(model_name, data.classes, settings)
        model = build_model(model_name, **model_kwargs)
        if settings["init"]:
            from torchlab.models.mnist import init_normal

            init_normal(model, settings["init"])
        train = TensorBatcher((normalise(x_train), y_train), hp["batch_size"], shuffle=True, device=ctx.device,
                              seed=ctx.seed, transform=augment_batch if settings["augment"] else None)
        val = TensorBatcher((normalise(x_val), y_val), EVAL_BATCH, device=ctx.device) if x_val is not None else None
        optimizer, scheduler = make_optimizer(model, settings["optimizer"], hp, len(train) if settings["one_cycle"] else 0)
        conv = model_name in CONV_MODELS
        args.channels_last = bool(args.channels_last or conv)  # faster convolutions on CPU and GPU alike
        args.amp = bool(args.amp or (ctx.device.type == "cuda" and not args.fp32))
        trainer = self.make_trainer(
            ctx, args, model, make_loss(data.classes, settings["loss"], settings["label_smoothing"]), optimizer,
            metrics={"accuracy": Accuracy() if data.classes > 1 else BinaryAccuracy()},
            monitor="val_loss" if val is not None else "train_loss",
            scheduler=scheduler, scheduler_interval="batch",
            meta={"model_name": model_name, "model_kwargs": model_kwargs,
                  "normalization": {"mean": mean, "std": std, "input": "pixels / 255"},
                  "digits": list(data.digits) if data.digits else None, "classes": data.class_names(),
                  "train_samples": len(x_train)},
        )
        result = trainer.fit(train, val, resume=ctx.resume)
        probs = predict_probabilities(model, normalise(data.x_test), ctx.device)
        test_accuracy = accuracy_from_probabilities(probs, data.y_test)
        summary: dict[str, Any] = {
            "task": self.name, "model": model_name, "recipe": ctx.recipe, "device": str(ctx.device),
            "train_samples": len(x_train), "epochs": result.epochs_run, "fit_seconds": round(result.fit_seconds, 2),
        }
        if "val_accuracy" in result.last:
            summary["val_accuracy"] = result.last["val_accuracy"]
        summary.update(test_accuracy=round(test_accuracy, 4), checkpoint=str(ctx.out / "best.pt"))
        if ctx.is_main:
            add_metrics(ctx.out / "best.pt", {"test_accuracy": test_accuracy})
            if ctx.figures:
                from torchlab.plots.mnist import write_mnist_figures

                summary["figures"] = str(write_mnist_figures(
                    result.history, model, data, probs, normalise, ctx.out / "figures", title=model_name))
        return summary

    # --------------------------------------------------------------- evaluate
    def evaluate(self, model: nn.Module, meta: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
        data = load_test_split(args.data_dir, meta)
        x = normalise_like(meta, data[0])
        probs = predict_probabilities(model, x, next(model.parameters()).device, args.batch_size)
        y = data[1]
        picked = probs[torch.arange(len(y)), y.long()]  # binary models give two columns too
        loss = float(-picked.clamp_min(1e-12).log().mean())
        return {"accuracy": accuracy_from_probabilities(probs, y), "loss": loss, "samples": len(y)}

    # ---------------------------------------------------------------- predict
    def predict(self, model: nn.Module, meta: dict[str, Any], inputs: list[str], args: argparse.Namespace) -> str:
        from torchlab.data.mnist_image import image_to_mnist

        rows: list[tuple[str, torch.Tensor, str]] = []
        if args.index:
            x_test, y_test = load_test_split(args.data_dir, meta)
            for index in args.index:
                if not 0 <= index < len(y_test):
                    raise UsageError(f"--index must be in 0..{len(y_test) - 1} (the MNIST test set), got {index}")
                rows.append((f"test[{index}]", x_test[index], meta["classes"][int(y_test[index])]))
        for path in inputs:
            rows.append((path, torch.from_numpy(image_to_mnist(path)).unsqueeze(0), ""))
        if not rows:
            raise UsageError("give an image path (PNG/JPG of one digit) or --index N into the test set")
        x = normalise_like(meta, torch.stack([image for _, image, _ in rows]))
        probs = predict_probabilities(model, x, next(model.parameters()).device, args.batch_size).numpy()
        classes = meta["classes"]
        results = []
        for (label, _, true), p in zip(rows, probs):
            best = int(p.argmax())
            results.append({"input": label, "prediction": classes[best], "probability": float(p[best]),
                            "true": true or None, "probabilities": {c: round(float(v), 4) for c, v in zip(classes, p)}})
        if args.out:
            write_predictions(results, Path(args.out), args.format)
        return format_predictions(results)


# ---------------------------------------------------------------- the pieces
def resolve_settings(recipe: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The recipe's settings with the command line's overrides, validated before anything runs."""
    s = dict(recipe)
    for key in ("model", "channels", "hidden", "activation", "label_smoothing", "val_size", "augment", "limit", "threads"):
        value = getattr(args, key, None)
        if value is not None:
            s[key] = value
    s.setdefault("hidden", None)
    s.setdefault("activation", None)
    s.setdefault("threads", None)
    if getattr(args, "digits", None) is not None:
        s["digits"] = validate_digits(args.digits)
    checks = [
        ("hidden", "--hidden", lambda v: v is None or v >= 1, ">= 1"),
        ("channels", "--channels", lambda v: min(v) >= 1, "three widths >= 1"),
        ("label_smoothing", "--label-smoothing", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        ("val_size", "--val-size", lambda v: v >= 0, ">= 0"),
        ("limit", "--limit", lambda v: v is None or v >= 1, ">= 1"),
        ("threads", "--threads", lambda v: v is None or v >= 1, ">= 1"),
    ]
    for key, flag, ok, want in checks:
        if not ok(s[key]):
            raise UsageError(f"{flag} must be {want}, got {s[key]}")
    if s["loss"] == "post" and not s["digits"]:
        raise UsageError("the post recipe trains a binary classifier; give --digits A B (e.g. --digits 4 5)")
    return s


def model_arguments(name: str, classes: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments (plain data, they go into the checkpoint) for model `name`."""
    kwargs: dict[str, Any] = {"classes": classes}
    if name == "mnist-cnn":
        kwargs["channels"] = [int(c) for c in settings["channels"]]
    if name in ("mnist-mlp", "mnist-tiny-cnn", "mnist-simple-cnn") and settings["hidden"]:
        kwargs["hidden"] = int(settings["hidden"])
    if name == "mnist-mlp" and settings["activation"]:
        kwargs["activation"] = settings["activation"]
    return kwargs


def make_optimizer(model: nn.Module, kind: str, hp: dict[str, Any], steps_per_epoch: int):
    """(optimizer, per-batch scheduler or None): AdamW with one-cycle LR, or plain SGD as the seeds use."""
    if kind == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    if not steps_per_epoch:
        return optimizer, None
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=hp["lr"], total_steps=hp["epochs"] * steps_per_epoch, pct_start=0.25)
    return optimizer, scheduler


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


@torch.no_grad()
def predict_probabilities(model: nn.Module, x: torch.Tensor, device, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """(n, classes) probabilities on the CPU; a one-logit model gives columns (1 - p, p)."""
    model.eval()
    out = []
    for start in range(0, len(x), batch_size or EVAL_BATCH):
        logits = model(x[start : start + (batch_size or EVAL_BATCH)].to(device)).float()
        if logits.shape[1] == 1:
            p = logits.sigmoid()
            out.append(torch.cat([1 - p, p], dim=1).cpu())
        else:
            out.append(logits.softmax(dim=1).cpu())
    return torch.cat(out)


def accuracy_from_probabilities(probs: torch.Tensor, y: torch.Tensor) -> float:
    return float((probs.argmax(dim=1) == y.long()).float().mean())


def normalise_like(meta: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    norm = meta.get("normalization") or {"mean": 0.0, "std": 1.0}
    return (x - float(norm["mean"])) / float(norm["std"])


def load_test_split(data_dir: str, meta: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images (n, 1, 28, 28) in [0, 1] and targets, restricted to the checkpoint's digits."""
    images, labels = load_split(data_dir, "test")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    digits = meta.get("digits")
    if digits:
        keep = torch.from_numpy((labels == digits[0]) | (labels == digits[1]))
        return x[keep], torch.from_numpy((labels[keep.numpy()] == digits[1]).astype(np.int64))
    return x, torch.from_numpy(labels)


def format_predictions(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        true = f" (true {r['true']})" if r["true"] else ""
        lines.append(f"{r['input']}: digit {r['prediction']} (probability {r['probability']:.3f}){true}")
        lines.append("  probabilities: " + " ".join(f"{c}:{v:.3f}" for c, v in r["probabilities"].items()))
    return "\n".join(lines)


def write_predictions(results: list[dict[str, Any]], path: Path, fmt: str) -> None:
    from torchlab.checkpoint import atomic_write_text

    if fmt == "csv":
        classes = list(results[0]["probabilities"])
        lines = ["input,prediction,probability,true," + ",".join(f"p_{c}" for c in classes)]
        for r in results:
            probs = ",".join(f"{r['probabilities'][c]:.4f}" for c in classes)
            lines.append(f"{r['input']},{r['prediction']},{r['probability']:.4f},{r['true'] or ''},{probs}")
        atomic_write_text(path, "\n".join(lines) + "\n")
    else:
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")


register_task(MnistTask())
