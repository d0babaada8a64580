"""`torchlab train patch-linear`: brightness = w0 + w1*x + w2*y on a 32x32 grey patch.

The data is a crop of a photo (default: matplotlib's grace_hopper.jpg, a shaded part of
the forehead) or, with --ramp, the seed's synthetic ramp 80 + 1.2x + 0.8y + N(0, 2^2).
Two ways to train the same three weights:
  --mode manual    the seed's loop with tensors: err = X w - I, grad = (2/N) X^T err, w -= lr grad
  --mode autograd  LinearPatchRegressor + MSELoss + torch.optim.SGD through the Trainer
Both take exactly the same steps. The answer is checked against least squares
(torch.linalg.lstsq), with every weight vector shown in grey levels and pixels.
Recipes: default = --scale (x, y, brightness mapped to [0, 1]), lr 0.5, 300 epochs;
seed = the seed's raw pixels, lr 1e-4, 800 epochs (which stops far from least squares).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.data.batcher import TensorBatcher
from torchlab.data.patch import DEFAULT_COL, DEFAULT_ROW, DEFAULT_SIZE, PatchScaling, design_matrix, photo_patch, ramp_patch
from torchlab.device import one_cpu_thread
from torchlab.errors import TrainingError, UsageError
from torchlab.models import build_model
from torchlab.tasks import register_task
from torchlab.tasks.base import Task
from torchlab.tasks.full_batch import fit_and_save, save_plain


def manual_descent(rows: torch.Tensor, targets: torch.Tensor, lr: float, epochs: int,
                   weights: torch.Tensor | None = None) -> tuple[torch.Tensor, list[float]]:
    """The seed's gradient-descent loop on tensors; returns the weights and the MSE before each step."""
    n = rows.shape[0]
    w = torch.zeros(rows.shape[1], dtype=rows.dtype, device=rows.device) if weights is None else weights.clone()
    losses = []
    for epoch in range(epochs):
        err = rows @ w - targets
        grad = (2.0 / n) * (rows.T @ err)
        w = w - lr * grad
        losses.append(float(err @ err) / n)
        if not math.isfinite(losses[-1]):
            raise TrainingError(f"the loss became {losses[-1]} in epoch {epoch + 1} (lr {lr:g}); "
                                "divide --lr by 10 or use --scale")
    return w, losses


def least_squares(rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The exact minimiser of the MSE (torch.linalg.lstsq in float64 on the CPU)."""
    a = rows.detach().to("cpu", torch.float64)
    b = targets.detach().to("cpu", torch.float64).unsqueeze(1)
    return torch.linalg.lstsq(a, b).solution.squeeze(1)


def describe_residuals(patch: np.ndarray, prediction: np.ndarray, best_mse: float,
                       noise: float | None = None) -> dict[str, Any]:
    """Residual RMS and where residuals are largest, with a few sentences that interpret them.

    best_mse is the least-squares MSE: a fit well above it has not converged yet.
    noise is the ramp's noise level, when the patch is synthetic.
    """
    residual = patch - prediction
    mse = float(np.mean(residual**2))
    rms = mse**0.5
    row, col = np.unravel_index(np.argmax(np.abs(residual)), residual.shape)
    h, w = residual.shape
    quarters = {
        "top-left": residual[: h // 2, : w // 2], "top-right": residual[: h // 2, w // 2 :],
        "bottom-left": residual[h // 2 :, : w // 2], "bottom-right": residual[h // 2 :, w // 2 :],
    }
    worst = max(quarters, key=lambda k: float(np.mean(np.abs(quarters[k]))))
    where = (f"The largest residual ({residual[row, col]:+.1f}) is at row {row}, col {col}; the {worst} quarter "
             f"has the largest mean |residual| ({np.mean(np.abs(quarters[worst])):.2f}).")
    if mse > 1.01 * best_mse + 1e-9:
        text = (f"Gradient descent stopped short of the best plane: its MSE is {mse:.1f} against {best_mse:.1f} "
                f"for least squares, so the residual map shows mostly the unfinished fit. {where} Train longer, "
                "raise --lr or use --scale: on raw pixels the intercept w0 learns slowest.")
    else:
        explained = 1.0 - mse / float(np.var(patch)) if np.var(patch) > 0 else 1.0
        if noise is not None and rms <= 1.2 * noise + 0.5:
            fit = f"about the ramp's noise level {noise:g}, so what is left is the noise."
        elif noise is not None:
            fit = f"well above the ramp's noise level {noise:g}: clipping to 0..255 bends the ramp."
        else:
            fit = (f"the plane accounts for {100 * explained:.0f}% of the brightness variance; "
                   "what it leaves is whatever is not a straight ramp (texture, edges, shadows).")
        text = f"Residual RMS {rms:.2f} grey levels: {fit} {where}"
    return {"residual_rms": rms, "largest_residual": float(residual[row, col]),
            "largest_at": (int(row), int(col)), "worst_quarter": worst, "interpretation": text}


@dataclass
class PatchFit:
    """What one fit produced, in original units (grey levels, pixels)."""

    weights: torch.Tensor  # gradient descent, original units
    losses: list[float]  # MSE per epoch in grey levels^2
    epochs: int
    exact: torch.Tensor | None = None  # least squares, original units

    @property
    def relative_difference(self) -> float:
        return float(torch.linalg.norm(self.weights - self.exact) / torch.linalg.norm(self.exact))


def describe_source(source: dict[str, Any]) -> str:
    """One line naming the patch: the ramp's formula, or the photo and the crop."""
    size = source["size"]
    if source["kind"] == "ramp":
        return (f"ramp {source['intercept']:g} + {source['slope_x']:g}x + {source['slope_y']:g}y "
                f"+ N(0, {source['noise']:g}^2), {size}x{size}")
    name = Path(source["image"]).name if source["image"] else "grace_hopper.jpg"
    row, col = source["row"], source["col"]
    return f"{name} rows {row}..{row + size - 1}, cols {col}..{col + size - 1}"


def _vector(w: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in w.tolist()) + "]"


class PatchLinearTask(Task):
    name = "patch-linear"
    help = "linear patch regressor: brightness = w0 + w1*x + w2*y on a 32x32 grey patch (photo or ramp)"
    recipes = {
        "default": {"epochs": 300, "lr": 0.5, "batch_size": None, "weight_decay": 0.0, "patience": None, "scale": True},
        "seed": {"epochs": 800, "lr": 1e-4, "batch_size": None, "weight_decay": 0.0, "patience": None, "scale": False},
    }

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--mode", choices=("manual", "autograd"), default="autograd",
                            help="manual: the seed's hand-written gradient loop; autograd: module + torch.optim + "
                                 "Trainer (default)")
        parser.add_argument("--scale", action=argparse.BooleanOptionalAction, default=None,
                            help="map x, y and brightness to [0, 1] before training (default recipe: on, seed: off)")
        g = parser.add_argument_group("photo patch (the default data)")
        g.add_argument("--image", help="any photo; default: matplotlib's grace_hopper.jpg")
        g.add_argument("--row", type=int, default=DEFAULT_ROW, help=f"top row of the crop (default: {DEFAULT_ROW})")
        g.add_argument("--col", type=int, default=DEFAULT_COL, help=f"left column of the crop (default: {DEFAULT_COL})")
        g.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"side of the square patch (default: {DEFAULT_SIZE})")
        r = parser.add_argument_group("synthetic ramp (instead of a photo)")
        r.add_argument("--ramp", action="store_true", help="fit intercept + slope_x*x + slope_y*y + noise instead of a photo")
        r.add_argument("--intercept", type=float, default=80.0, help="ramp brightness at x = y = 0 (default: 80)")
        r.add_argument("--slope-x", type=float, default=1.2, help="grey levels per column (default: 1.2)")
        r.add_argument("--slope-y", type=float, default=0.8, help="grey levels per row (default: 0.8)")
        r.add_argument("--noise", type=float, default=2.0, help="standard deviation of the Gaussian noise (default: 2)")

    # --------------------------------------------------------------------- data
    def load_patch(self, args: argparse.Namespace) -> tuple[np.ndarray, dict[str, Any]]:
        """The patch (0..255) and a plain description of where it came from (stored in the checkpoint)."""
        if args.ramp:
            if args.image:
                raise UsageError("--ramp and --image exclude each other; drop one")
            for flag, value in (("--intercept", args.intercept), ("--slope-x", args.slope_x),
                                ("--slope-y", args.slope_y), ("--noise", args.noise)):
                if not math.isfinite(value):
                    raise UsageError(f"{flag} must be a finite number, got {value}")
            if args.noise < 0:
                raise UsageError(f"--noise is a standard deviation and must be >= 0, got {args.noise}")
            patch = ramp_patch(args.size, args.intercept, args.slope_x, args.slope_y, args.noise, seed=args.seed)
            source = {"kind": "ramp", "size": args.size, "intercept": args.intercept, "slope_x": args.slope_x,
                      "slope_y": args.slope_y, "noise": args.noise, "seed": args.seed}
            return patch, source
        patch = photo_patch(args.image, args.row, args.col, args.size)
        source = {"kind": "photo", "image": str(args.image or ""), "row": args.row, "col": args.col, "size": args.size}
        return patch, source

    def _check_flags(self, args: argparse.Namespace) -> None:
        if args.mode == "manual":
            for flag, value in (("--batch-size", args.batch_size), ("--weight-decay", args.weight_decay),
                                ("--patience", args.patience)):
                if value is not None:
                    raise UsageError(f"{flag} needs --mode autograd; the manual loop is the seed's plain full-batch descent")
            if args.resume:
                raise UsageError("--resume needs --mode autograd (the manual loop keeps no optimiser state)")

    # -------------------------------------------------------------------- train
    def train(self, args: argparse.Namespace) -> dict[str, Any]:
        self._check_flags(args)
        patch, source = self.load_patch(args)  # bad paths and crops fail here, before anything is written
        ctx = self.context(args)
        hp = ctx.hparams
        scale = hp["scale"] if args.scale is None else args.scale
        scaling = PatchScaling.unit(patch.shape[0]) if scale else PatchScaling()
        rows64, targets64 = design_matrix(patch)
        rows, targets = (t.to(ctx.device, torch.float32) for t in scaling.apply(rows64, targets64))
        model_meta = {"model_name": "patch-linear", "model_kwargs": {}, "source": source, "mode": args.mode,
                      "normalization": {"coord_divisor": scaling.coord, "brightness_divisor": scaling.brightness,
                                        "input": "rows [1, x, y] with x = column, y = row in pixels"}}

        with one_cpu_thread(ctx.device):
            fit = self.fit(ctx, args, rows, targets, scaling, model_meta)
        fit.exact = least_squares(rows64, targets64)
        return self.report(ctx, args, patch, source, fit, scale)

    def fit(self, ctx, args, rows: torch.Tensor, targets: torch.Tensor, scaling: PatchScaling,
            model_meta: dict[str, Any]) -> PatchFit:
        """Train in the chosen mode, write the checkpoint; weights and losses in original units."""
        hp = ctx.hparams
        model = build_model("patch-linear").to(ctx.device)
        if args.mode == "manual":
            weights, losses = manual_descent(rows, targets, hp["lr"], hp["epochs"])
            with torch.no_grad():
                model.weight.copy_(weights)
            history = [{"epoch": i + 1, "train_loss": loss} for i, loss in enumerate(losses)]
            if ctx.is_main:
                save_plain(model, ctx.out, history, task=self.name, recipe=ctx.recipe, seed=ctx.seed,
                           hparams=dict(hp), **model_meta)
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
            batches = TensorBatcher((rows, targets), hp["batch_size"], shuffle=hp["batch_size"] is not None,
                                    device=ctx.device, seed=ctx.seed)
            trainer = self.make_trainer(ctx, args, model, nn.MSELoss(), optimizer, monitor="train_loss",
                                        restore_best=False, meta=model_meta)
            result = fit_and_save(trainer, batches, ctx.out, resume=ctx.resume)
            history = result.history
            weights = model.weight.detach()
        return PatchFit(
            weights=scaling.to_original(weights.detach().to("cpu", torch.float64)),
            losses=[row["train_loss"] * scaling.brightness**2 for row in history],
            epochs=len(history),
        )

    def report(self, ctx, args, patch: np.ndarray, source: dict, fit: PatchFit, scale: bool) -> dict[str, Any]:
        """The printed summary and the figures."""
        rows, _ = design_matrix(patch)
        prediction = (rows @ fit.weights).numpy().reshape(patch.shape)
        exact_mse = float(np.mean((patch - (rows @ fit.exact).numpy().reshape(patch.shape)) ** 2))
        residuals = describe_residuals(patch, prediction, exact_mse, source.get("noise"))
        data = describe_source(source)
        summary: dict[str, Any] = {
            "task": self.name, "mode": args.mode, "recipe": ctx.recipe, "data": data, "scale": scale,
            "device": str(ctx.device), "epochs": fit.epochs, "lr": ctx.hparams["lr"],
            "gd_weights": _vector(fit.weights), "lstsq_weights": _vector(fit.exact),
            "difference": _vector(fit.weights - fit.exact), "relative_difference": f"{fit.relative_difference:.2e}",
            "final_mse": fit.losses[-1] if fit.losses else float("nan"), "lstsq_mse": exact_mse,
            "residual_rms": residuals["residual_rms"],
            "largest_residual": f"{residuals['largest_residual']:+.2f} at row {residuals['largest_at'][0]}, "
                                f"col {residuals['largest_at'][1]}",
            "interpretation": residuals["interpretation"],
            "checkpoint": str(ctx.out / "best.pt"),
        }
        if ctx.is_main and ctx.figures:
            from torchlab.plots.small import plot_patch_loss, plot_patch_panels

            folder = ctx.out / "figures"
            plot_patch_loss(fit.losses, exact_mse, folder / "loss.png",
                            title=f"patch-linear ({args.mode}, {'scaled' if scale else 'raw pixels'}, lr {ctx.hparams['lr']:g})")
            plot_patch_panels(patch, prediction, folder / "panels.png", title=data)
            summary["figures"] = str(folder)
        return summary

    # ---------------------------------------------------------------- inference
    def _patch_from_meta(self, meta: dict[str, Any]) -> np.ndarray:
        source = meta.get("source", {})
        if source.get("kind") == "ramp":
            return ramp_patch(source["size"], source["intercept"], source["slope_x"], source["slope_y"],
                              source["noise"], seed=source["seed"])
        return photo_patch(source.get("image") or None, source["row"], source["col"], source["size"])

    def _predict_rows(self, model: nn.Module, meta: dict[str, Any], rows: torch.Tensor) -> torch.Tensor:
        norm = meta["normalization"]
        scaling = PatchScaling(norm["coord_divisor"], norm["brightness_divisor"])
        scaled, _ = scaling.apply(rows, torch.zeros(rows.shape[0], dtype=rows.dtype))
        device = next(model.parameters()).device
        with torch.no_grad():
            return model(scaled.to(device, torch.float32)).cpu().double() * scaling.brightness

    def evaluate(self, model, meta, args) -> dict[str, float]:
        patch = self._patch_from_meta(meta)
        rows, targets = design_matrix(patch)
        prediction = self._predict_rows(model, meta, rows)
        mse = float(torch.mean((prediction - targets) ** 2))
        exact = least_squares(rows, targets)
        exact_mse = float(torch.mean((rows @ exact - targets) ** 2))
        return {"mse": mse, "rmse": mse**0.5, "lstsq_mse": exact_mse, "pixels": int(targets.numel())}

    def predict(self, model, meta, inputs, args) -> str:
        points: list[tuple[str, float, float]] = []
        for text in inputs:
            try:
                x, y = (float(v) for v in text.split(","))
            except ValueError:
                raise UsageError(f"give pixel positions as x,y (column,row), e.g. 3,17; got {text!r}") from None
            points.append((f"x={x:g}, y={y:g}", x, y))
        truth: dict[int, float] = {}
        if args.index:
            patch = self._patch_from_meta(meta)
            h, w = patch.shape
            for index in args.index:
                if not 0 <= index < h * w:
                    raise UsageError(f"--index must be in 0..{h * w - 1} (pixels of the patch, row by row), got {index}")
                y, x = divmod(index, w)
                truth[len(points)] = float(patch[y, x])
                points.append((f"pixel {index} (x={x}, y={y})", float(x), float(y)))
        if not points:
            raise UsageError("give pixel positions x,y (e.g. 3,17) or --index N")
        rows = torch.tensor([[1.0, x, y] for _, x, y in points], dtype=torch.float64)
        values = self._predict_rows(model, meta, rows).tolist()
        lines = []
        for i, ((label, _, _), value) in enumerate(zip(points, values)):
            extra = f" (patch: {truth[i]:.2f})" if i in truth else ""
            lines.append(f"{label}: brightness {value:.2f}{extra}")
        return "\n".join(lines)


register_task(PatchLinearTask())
