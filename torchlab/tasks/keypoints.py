"""`torchlab train keypoint-fcn | keypoint-cnn | keypoint-net`: 15 facial keypoints from 96x96 grey faces.

Data: a Kaggle-format training.csv (`--data`) or, offline, synthetic faces in the same format.
Validation is always the seed's: 10% of the rows that have all 15 keypoints, split with
random_state=42, so every model and every `--missing` setting is measured on the same faces.

Loss: mean squared error in pixels over the labelled coordinates only (a 0/1 mask), so rows
with missing keypoints still teach the ones they have (`--missing mask`, the default). The
metric is the RMSE in pixels, overall and per keypoint, next to the mean-keypoint baseline.

Recipes:
  seed     the practical: Adam 1e-3, batch 64, 20 epochs, complete rows only, no augmentation.
  default  keypoint-fcn/cnn: the same models with every row (masked), augmentation and a cosine LR;
           keypoint-net: AdamW with a one-cycle LR for 100 epochs, every row, augmentation
           (about a minute or two on one GPU for the 7,049 Kaggle faces; not measured here).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.checkpoint import add_metrics
from torchlab.data.batcher import TensorBatcher
from torchlab.data.keypoints import (
    COORD_COLUMNS,
    FLIP_SUM,
    KEYPOINT_NAMES,
    KeypointTable,
    read_training_csv,
    split_rows,
)
from torchlab.data.keypoints_augment import KeypointAugment
from torchlab.errors import DataError, UsageError
from torchlab.metrics import RMSE
from torchlab.models import build_model
from torchlab.tasks import register_task
from torchlab.tasks.base import Task

PIXEL_SCALE = 255.0
DEFAULT_SYNTHETIC = 2000
SYNTHETIC_SEED = 0

SEED_RECIPE = {"epochs": 20, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "patience": None,
               "missing": "drop", "augment": False, "optimizer": "adam", "schedule": "none"}


def masked_mse(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the labelled coordinates (mask = 1); unlabelled ones get no gradient.

    With a full mask this is exactly nn.MSELoss() (the seed's loss).
    """
    diff = (output.float() - target.float()) * mask
    return diff.pow(2).sum() / mask.sum().clamp_min(1.0)


def per_keypoint_rmse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(15,) RMSE in pixels of each keypoint over its labelled x and y values (NaN if never labelled)."""
    sq = ((pred - np.nan_to_num(truth)) ** 2 * mask).reshape(len(pred), -1, 2).sum(axis=(0, 2))
    count = mask.reshape(len(pred), -1, 2).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(sq / count)


def overall_rmse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(((pred - np.nan_to_num(truth)) ** 2 * mask).sum() / max(mask.sum(), 1)))


def to_tensors(table: KeypointTable, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images (n, 1, 96, 96) in [0, 1], keypoints (n, 30) with 0 where unlabelled, mask (n, 30))."""
    images = torch.from_numpy(table.images[rows]).float().div_(PIXEL_SCALE).unsqueeze(1)
    mask = torch.from_numpy(table.labelled[rows]).float()
    keypoints = torch.from_numpy(np.nan_to_num(table.keypoints[rows])) * mask
    return images, keypoints, mask


@torch.no_grad()
def predict_images(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """(n, 1, 96, 96) in [0, 1] -> (n, 30) pixel coordinates, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    out = [model(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, len(COORD_COLUMNS)), np.float32)


def load_table(data: str | None, synthetic: int, synthetic_seed: int = SYNTHETIC_SEED) -> KeypointTable:
    """The training table: a Kaggle CSV when `data` is given, else `synthetic` generated faces."""
    if data:
        return read_training_csv(data)
    from torchlab.data.synthetic_faces import make_faces

    return make_faces(synthetic, seed=synthetic_seed)


class KeypointTask(Task):
    """One keypoint model trained through the Trainer; subclasses name the model and its recipes."""

    model_name = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", help="Kaggle-format training.csv (default: synthetic faces, generated offline)")
        parser.add_argument("--synthetic", type=int, default=DEFAULT_SYNTHETIC,
                            help=f"number of synthetic faces when --data is not given (default: {DEFAULT_SYNTHETIC})")
        parser.add_argument("--missing", choices=("drop", "mask"),
                            help="rows with missing keypoints: drop them (the seed) or mask the missing "
                                 "coordinates out of the loss (default recipe)")
        parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
        parser.add_argument("--flip-sum", type=float, default=FLIP_SUM,
                            help="the horizontal flip maps x to FLIP_SUM - x (default 95: Kaggle's pixel-centred "
                                 "coordinates); for experiments only")

    def model_kwargs(self, args: argparse.Namespace, mean: list[float] | None = None) -> dict[str, Any]:
        """Constructor arguments (plain data, stored in the checkpoint); `mean` = mean keypoints of the training set."""
        return {}

    # ------------------------------------------------------------------ train
    def train(self, args: argparse.Namespace) -> dict[str, Any]:
        if args.data is None and args.synthetic < 20:
            raise UsageError(f"--synthetic must be at least 20 faces, got {args.synthetic}")
        self.model_kwargs(args)  # check the model flags before anything else
        ctx = self.context(args)
        hp = ctx.hparams
        missing = args.missing or hp["missing"]
        table = load_table(args.data, args.synthetic)
        split = split_rows(table, missing)
        if len(split.train) == 0:
            raise DataError("no training rows are left after the validation split; use more data")
        train_t = to_tensors(table, split.train)
        val_t = to_tensors(table, split.val)
        baseline = mean_keypoint_baseline(train_t[1], train_t[2], val_t[1], val_t[2])

        mean = mean_keypoints(train_t[1], train_t[2])
        model_kwargs = self.model_kwargs(args, mean if ctx.recipe != "seed" else None)
        model = build_model(self.model_name, **model_kwargs)
        if ctx.recipe != "seed" and hasattr(model, "fc3"):
            with torch.no_grad():  # start the seed architectures at the mean face, too
                model.fc3.bias.copy_(torch.tensor(mean))
        optimizer, scheduler, interval = self.make_optimizer(model, hp, len(split.train))
        augment = hp["augment"] and not args.no_augment
        transform = KeypointAugment(flip_sum=args.flip_sum) if augment else None
        train = TensorBatcher(train_t, hp["batch_size"], shuffle=True, device=ctx.device, transform=transform,
                              seed=ctx.seed)
        val = TensorBatcher(val_t, 256, device=ctx.device)
        data_meta = {"csv": str(Path(args.data).resolve()) if args.data else None,
                     "synthetic": None if args.data else args.synthetic, "synthetic_seed": SYNTHETIC_SEED,
                     "missing": missing, "train_rows": len(split.train), "val_rows": len(split.val)}
        trainer = self.make_trainer(
            ctx, args, model, masked_mse, optimizer,
            metrics={"rmse": RMSE()}, monitor="val_rmse", mode="min",
            scheduler=scheduler, scheduler_interval=interval,
            meta={"model_name": self.model_name, "model_kwargs": model_kwargs,
                  "normalization": {"divide_by": PIXEL_SCALE, "input": "96x96 grey levels 0..255",
                                    "output": "pixels, pixel j centred at x = j"},
                  "keypoint_names": list(KEYPOINT_NAMES), "flip_sum": args.flip_sum, "augment": augment,
                  "data": data_meta},
        )
        result = trainer.fit(train, val, resume=ctx.resume)
        pred = predict_images(model, val_t[0])
        truth, mask = val_t[1].numpy(), val_t[2].numpy()
        rmse = overall_rmse(pred, truth, mask)
        per_kp = per_keypoint_rmse(pred, truth, mask)
        summary: dict[str, Any] = {
            "task": self.name, "recipe": ctx.recipe, "device": str(ctx.device),
            "data": data_meta["csv"] or f"synthetic faces ({args.synthetic})", "missing": missing,
            "augment": augment, "train_rows": len(split.train), "val_rows": len(split.val),
            "epochs": result.epochs_run, "best_epoch": result.best_epoch, "fit_seconds": round(result.fit_seconds, 2),
            "val_rmse_px": round(rmse, 4), "baseline_rmse_px": round(baseline, 4),
            "worst_keypoint": f"{KEYPOINT_NAMES[int(np.nanargmax(per_kp))]} ({np.nanmax(per_kp):.3f} px)",
            "checkpoint": str(ctx.out / "best.pt"),
        }
        if ctx.is_main:
            add_metrics(ctx.out / "best.pt", {"val_rmse_px": rmse, "baseline_rmse_px": baseline,
                                                 **{f"rmse_{n}": float(v) for n, v in zip(KEYPOINT_NAMES, per_kp)}})
            if ctx.figures:
                summary["figures"] = str(self.write_figures(result.history, table, split, pred, per_kp,
                                                            ctx.out / "figures"))
        return summary

    def make_optimizer(self, model: nn.Module, hp: dict[str, Any], n_train: int):
        """(optimizer, scheduler or None, scheduler interval) as the recipe says."""
        if hp["optimizer"] == "adam":
            optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        steps = hp["epochs"] * math.ceil(n_train / hp["batch_size"])
        if hp["schedule"] == "onecycle":
            return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp["lr"], total_steps=steps,
                                                                  pct_start=0.2), "batch"
        if hp["schedule"] == "cosine":
            return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps), "batch"
        return optimizer, None, "epoch"

    def write_figures(self, history, table: KeypointTable, split, pred: np.ndarray, per_kp: np.ndarray, folder: Path):
        from torchlab.plots.common import plot_history
        from torchlab.plots.keypoints import plot_faces, plot_keypoint_rmse

        plot_history(history, folder / "loss.png", title=f"{self.name}: masked MSE (pixels²) and RMSE (pixels)")
        shown = np.arange(min(10, len(split.val)))
        rows = split.val[shown]
        plot_faces(table.images[rows], table.keypoints[rows], {self.model_name: pred[shown]}, folder / "faces.png",
                   title=f"{self.name} on validation faces (green: true)")
        plot_keypoint_rmse(KEYPOINT_NAMES, {self.model_name: per_kp}, folder / "keypoint_rmse.png",
                           title=f"{self.name}: validation RMSE per keypoint (overall {overall_rmse_from(per_kp):.3f} px)")
        sample = split.train[:9]
        plot_faces(table.images[sample], table.keypoints[sample], {}, folder / "training_faces.png", columns=3,
                   title="training faces and their labelled keypoints")
        return folder

    # --------------------------------------------------------------- evaluate
    def validation_data(self, meta: dict[str, Any], args: argparse.Namespace):
        """The checkpoint's validation faces: from --data, else the file or synthetic set it was trained on."""
        data = meta.get("data", {})
        path = getattr(args, "data", None) or data.get("csv")
        table = load_table(path, int(data.get("synthetic") or DEFAULT_SYNTHETIC), int(data.get("synthetic_seed", 0)))
        split = split_rows(table, data.get("missing", "mask"))
        return table, split

    def evaluate(self, model, meta, args) -> dict[str, float]:
        table, split = self.validation_data(meta, args)
        images, truth, mask = to_tensors(table, split.val)
        train_t = to_tensors(table, split.train)
        pred = predict_images(model, images, args.batch_size or 256)
        per_kp = per_keypoint_rmse(pred, truth.numpy(), mask.numpy())
        out = {"val_rmse_px": overall_rmse(pred, truth.numpy(), mask.numpy()),
               "baseline_rmse_px": mean_keypoint_baseline(train_t[1], train_t[2], truth, mask),
               "val_rows": len(split.val)}
        out.update({f"rmse_{n}": float(v) for n, v in zip(KEYPOINT_NAMES, per_kp)})
        return out

    # ---------------------------------------------------------------- predict
    def predict(self, model, meta, inputs, args) -> str:
        from torchlab.tasks import keypoints_predict as kp_predict

        if args.submission and not any(str(p).lower().endswith(".csv") for p in inputs):
            raise UsageError("--submission needs Kaggle's test.csv as the input: torchlab predict CKPT test.csv "
                             "--submission IdLookupTable.csv")
        lines: list[str] = []
        if args.index:
            table, split = self.validation_data(meta, args)
            lines += kp_predict.predict_validation_rows(model, table, split.val, args.index)
        for path in inputs:
            if str(path).lower().endswith(".csv"):
                lines += kp_predict.predict_test_csv(model, path, args)
            else:
                lines += kp_predict.predict_photo(model, path, args)
        if not lines:
            raise UsageError("give a photo, a test.csv, or --index N (a validation face)")
        return "\n".join(lines)


def mean_keypoints(keypoints: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """The mean of each coordinate over the rows where it is labelled (the image centre where it never is)."""
    count = mask.sum(0)
    mean = torch.where(count > 0, (keypoints * mask).sum(0) / count.clamp_min(1), torch.tensor(47.5))
    return [round(float(v), 4) for v in mean]


def mean_keypoint_baseline(train_kp: torch.Tensor, train_mask: torch.Tensor,
                           val_kp: torch.Tensor, val_mask: torch.Tensor) -> float:
    """Validation RMSE (pixels) of always predicting the training set's mean of each labelled coordinate."""
    pred = torch.tensor(mean_keypoints(train_kp, train_mask)).expand_as(val_kp).numpy()
    return overall_rmse(pred, val_kp.numpy(), val_mask.numpy())


def overall_rmse_from(per_keypoint: np.ndarray) -> float:
    """Overall RMSE from per-keypoint RMSEs of equally labelled keypoints (the complete validation rows)."""
    return float(np.sqrt(np.nanmean(per_keypoint ** 2)))


class KeypointFCNTask(KeypointTask):
    name = "keypoint-fcn"
    help = "the practical's fully connected keypoint net (9216->1024->512->30) on Kaggle-format faces"
    model_name = "keypoint-fcn"
    recipes = {
        "default": {"epochs": 30, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "patience": None,
                    "missing": "mask", "augment": True, "optimizer": "adam", "schedule": "cosine"},
        "seed": dict(SEED_RECIPE),
    }


class KeypointCNNTask(KeypointTask):
    name = "keypoint-cnn"
    help = "the practical's 3-conv keypoint CNN on Kaggle-format faces"
    model_name = "keypoint-cnn"
    recipes = {
        "default": {"epochs": 30, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "patience": None,
                    "missing": "mask", "augment": True, "optimizer": "adam", "schedule": "cosine"},
        "seed": dict(SEED_RECIPE),
    }


class KeypointNetTask(KeypointTask):
    name = "keypoint-net"
    help = "torchlab's keypoint CNN (residual, BatchNorm, heat maps + soft-argmax) with augmentation"
    model_name = "keypoint-net"
    recipes = {
        "default": {"epochs": 100, "lr": 2e-3, "batch_size": 64, "weight_decay": 1e-4, "patience": None,
                    "missing": "mask", "augment": True, "optimizer": "adamw", "schedule": "onecycle"},
        "seed": dict(SEED_RECIPE),
    }

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--width", type=int, default=32, help="channels of the first stage (default: 32)")

    def model_kwargs(self, args: argparse.Namespace, mean: list[float] | None = None) -> dict[str, Any]:
        if args.width < 4:
            raise UsageError(f"--width must be >= 4, got {args.width}")
        return {"width": args.width, "mean_keypoints": mean}


for _task in (KeypointFCNTask(), KeypointCNNTask(), KeypointNetTask()):
    register_task(_task)

