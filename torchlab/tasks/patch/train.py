"""How `patch` trains its patch-linear: the patch, its design rows, the model and its fit (autograd through the
Trainer, or the seed's manual loop), compared with least squares. Config: tasks/patch/config.py;
evaluate/predict: infer.py; figures: plots.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from torchlab.data.batcher import TensorBatcher
from torchlab.data.patch import PatchScaling, design_matrix, photo_patch, ramp_patch
from torchlab.engine.full_batch import fit_and_save, save_plain
from torchlab.engine.optim import make_optimizer
from torchlab.errors import TrainingError, UsageError
from torchlab.models import build_model
from torchlab.models.patch import LinearPatchRegressor
from torchlab.runtime.device import one_cpu_thread
from torchlab.runtime.guards import check_memory
from torchlab.tasks.patch.config import PatchConfig
from torchlab.tasks.run import Run, RunResult


def manual_descent(
    rows: torch.Tensor, targets: torch.Tensor, lr: float, epochs: int, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, list[float]]:
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
            raise TrainingError(
                f"the loss became {losses[-1]} in epoch {epoch + 1} (lr {lr:g}); divide --lr by 10 or use --scale"
            )
    return w, losses


def least_squares(rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The exact minimizer of the MSE (torch.linalg.lstsq in float64 on the CPU)."""
    a = rows.detach().to("cpu", torch.float64)
    b = targets.detach().to("cpu", torch.float64).unsqueeze(1)
    return torch.linalg.lstsq(a, b).solution.squeeze(1)


def describe_residuals(
    patch: np.ndarray, prediction: np.ndarray, best_mse: float, noise: float | None = None, scaled: bool = False
) -> dict[str, Any]:
    """Residual MSE and RMS and where residuals are largest, with a few sentences that interpret them.

    best_mse is the least-squares MSE: a fit well above it has not converged yet.
    noise is the ramp's noise level, when the patch is synthetic; scaled tells whether the run
    already used --scale (then the advice does not suggest it).
    """
    residual = patch - prediction
    mse = float(np.mean(residual**2))
    rms = mse**0.5
    row, col = np.unravel_index(np.argmax(np.abs(residual)), residual.shape)
    h, w = residual.shape
    quarters = {
        "top-left": residual[: h // 2, : w // 2],
        "top-right": residual[: h // 2, w // 2 :],
        "bottom-left": residual[h // 2 :, : w // 2],
        "bottom-right": residual[h // 2 :, w // 2 :],
    }
    worst = max(quarters, key=lambda k: float(np.mean(np.abs(quarters[k]))))
    where = (
        f"The largest residual ({residual[row, col]:+.1f}) is at row {row}, col {col}; the {worst} quarter "
        f"has the largest mean |residual| ({np.mean(np.abs(quarters[worst])):.2f})."
    )
    if mse > 1.01 * best_mse + 1e-9:
        text = (
            f"Gradient descent stopped short of the best plane: its MSE is {mse:.1f} against {best_mse:.1f} "
            f"for least squares, so the residual map shows mostly the unfinished fit. {where} "
            + (
                "Train longer (--epochs) or raise --lr."
                if scaled
                else "Train longer, raise --lr or use --scale: on raw pixels the intercept w0 learns slowest."
            )
        )
    else:
        explained = 1.0 - mse / float(np.var(patch)) if np.var(patch) > 0 else 1.0
        if noise is not None and rms <= 1.2 * noise + 0.5:
            fit = f"about the ramp's noise level {noise:g}, so what is left is the noise."
        elif noise is not None:
            fit = f"well above the ramp's noise level {noise:g}: clipping to 0..255 bends the ramp."
        else:
            fit = (
                f"the plane accounts for {100 * explained:.0f}% of the brightness variance; "
                "what it leaves is whatever is not a straight ramp (texture, edges, shadows)."
            )
        text = f"Residual RMS {rms:.2f} gray levels: {fit} {where}"
    return {
        "mse": mse,
        "residual_rms": rms,
        "largest_residual": float(residual[row, col]),
        "largest_at": (int(row), int(col)),
        "worst_quarter": worst,
        "interpretation": text,
    }


@dataclass
class PatchFit:
    """What one fit produced, in original units (gray levels, pixels)."""

    weights: torch.Tensor  # gradient descent, original units
    losses: list[float]  # MSE per epoch in gray levels^2
    epochs: int
    exact: torch.Tensor | None = None  # least squares, original units

    @property
    def exact_weights(self) -> torch.Tensor:
        """`exact`, which the run sets once the fit is done."""
        if self.exact is None:
            raise RuntimeError("the least-squares weights of this fit are not computed yet")
        return self.exact

    @property
    def relative_difference(self) -> float:
        return float(torch.linalg.norm(self.weights - self.exact_weights) / torch.linalg.norm(self.exact_weights))


def describe_source(source: dict[str, Any]) -> str:
    """One line naming the patch: the ramp's formula, or the photo and the crop."""
    size = source["size"]
    if source["kind"] == "ramp":
        return (
            f"ramp {source['intercept']:g} + {source['slope_x']:g}x + {source['slope_y']:g}y "
            f"+ N(0, {source['noise']:g}^2), {size}x{size}"
        )
    name = Path(source["image"]).name if source["image"] else "grace_hopper.jpg"
    row, col = source["row"], source["col"]
    return f"{name} rows {row}..{row + size - 1}, cols {col}..{col + size - 1}"


def _vector(w: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in w.tolist()) + "]"


def load_patch(cfg: PatchConfig, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The patch (0..255) and a plain description of where it came from (stored in the checkpoint)."""
    if cfg.ramp:
        patch = ramp_patch(cfg.size, cfg.intercept, cfg.slope_x, cfg.slope_y, cfg.noise, seed=seed)
        source = {
            "kind": "ramp",
            "size": cfg.size,
            "intercept": cfg.intercept,
            "slope_x": cfg.slope_x,
            "slope_y": cfg.slope_y,
            "noise": cfg.noise,
            "seed": seed,
        }
        return patch, source
    patch = photo_patch(cfg.image, cfg.row, cfg.col, cfg.size)
    return patch, {"kind": "photo", "image": str(cfg.image or ""), "row": cfg.row, "col": cfg.col, "size": cfg.size}


def patch_meta(cfg: PatchConfig, source: dict[str, Any], scaling: PatchScaling) -> dict[str, Any]:
    """What a patch checkpoint records beside its weights: model, patch source, mode and scaling."""
    return {
        "model_name": cfg.model,
        "model_kwargs": {},
        "source": source,
        "mode": cfg.mode,
        "normalization": {
            "coord_divisor": scaling.coord,
            "brightness_divisor": scaling.brightness,
            "input": "rows [1, x, y] with x = column, y = row in pixels",
        },
    }


def train(cfg: PatchConfig, run: Run) -> RunResult:
    """Fit the three weights by gradient descent (manual or autograd), compare with least squares."""
    if cfg.mode == "manual" and run.resume:
        raise UsageError("--resume needs --mode autograd (the manual loop keeps no optimizer state)")
    # per pixel: float64 design rows and targets, float32 copies, least squares' work space (~128 bytes)
    check_memory(128 * cfg.size**2, f"a {cfg.size}x{cfg.size} patch", "lower --size", run.device)
    patch, source = load_patch(cfg, run.seed)  # bad paths and crops fail here, before anything is written
    scaling = PatchScaling.unit(patch.shape[0]) if cfg.scale else PatchScaling()
    rows64, targets64 = design_matrix(patch)
    rows, targets = (t.to(run.device, torch.float32) for t in scaling.apply(rows64, targets64))
    model_meta = patch_meta(cfg, source, scaling)
    with one_cpu_thread(run.device):
        fit = fit_patch(cfg, run, rows, targets, scaling, model_meta)
    fit.exact = least_squares(rows64, targets64)
    return report(cfg, run, patch, source, fit)


def fit_patch(
    cfg: PatchConfig,
    run: Run,
    rows: torch.Tensor,
    targets: torch.Tensor,
    scaling: PatchScaling,
    model_meta: dict[str, Any],
) -> PatchFit:
    """Train in the chosen mode and write the checkpoint; weights and losses in original units."""
    model = cast(LinearPatchRegressor, build_model(cfg.model).to(run.device))
    if cfg.mode == "manual":
        weights, losses = manual_descent(rows, targets, cfg.lr, cfg.epochs)
        with torch.no_grad():
            model.weight.copy_(weights)
        history = [{"epoch": i + 1, "train_loss": loss} for i, loss in enumerate(losses)]
        if run.is_main:
            from torchlab.config import as_dict

            save_plain(
                model,
                run.out,
                history,
                task=run.task,
                recipe=run.recipe,
                seed=run.seed,
                config=as_dict(cfg),
                **model_meta,
            )
    else:
        batches = TensorBatcher(
            (rows, targets), cfg.batch_size, shuffle=cfg.batch_size is not None, device=run.device, seed=run.seed
        )
        optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
        trainer = run.trainer(
            model,
            nn.MSELoss(),
            optimizer,
            monitor="train_loss",
            restore_best=False,
            scheduler=scheduler,
            scheduler_interval=interval,
            meta=model_meta,
        )
        history = fit_and_save(trainer, batches, run.out, resume=run.resume).history
        weights = model.weight.detach()
    return PatchFit(
        weights=scaling.to_original(weights.detach().to("cpu", torch.float64)),
        losses=[row["train_loss"] * scaling.brightness**2 for row in history],
        epochs=len(history),
    )


def report(cfg: PatchConfig, run: Run, patch: np.ndarray, source: dict[str, Any], fit: PatchFit) -> RunResult:
    """The summary (one MSE, of the final weights, used everywhere) and the figures."""
    rows, _ = design_matrix(patch)
    prediction = (rows @ fit.weights).numpy().reshape(patch.shape)
    exact_mse = float(np.mean((patch - (rows @ fit.exact_weights).numpy().reshape(patch.shape)) ** 2))
    residuals = describe_residuals(patch, prediction, exact_mse, source.get("noise"), scaled=cfg.scale)
    data = describe_source(source)
    summary: dict[str, Any] = {
        "task": run.task,
        "model": cfg.model,
        "mode": cfg.mode,
        "recipe": run.recipe,
        "data": data,
        "scale": cfg.scale,
        "device": str(run.device),
        "epochs": fit.epochs,
        "lr": cfg.lr,
        "gd_weights": _vector(fit.weights),
        "lstsq_weights": _vector(fit.exact_weights),
        "difference": _vector(fit.weights - fit.exact_weights),
        "relative_difference": f"{fit.relative_difference:.2e}",
        "final_mse": residuals["mse"],
        "lstsq_mse": exact_mse,
        "residual_rms": residuals["residual_rms"],
        "largest_residual": f"{residuals['largest_residual']:+.2f} at row {residuals['largest_at'][0]}, "
        f"col {residuals['largest_at'][1]}",
        "interpretation": residuals["interpretation"],
        "checkpoint": str(run.out / "best.pt"),
    }
    figures: list[Path] = []
    if run.is_main and run.figures:
        from torchlab.tasks.patch.plots import plot_patch_loss, plot_patch_panels

        folder = run.out / "figures"
        figures = [folder / "loss.png", folder / "panels.png"]
        plot_patch_loss(
            fit.losses,
            exact_mse,
            figures[0],
            title=f"patch-linear ({cfg.mode}, {'scaled' if cfg.scale else 'raw pixels'}, lr {cfg.lr:g})",
        )
        plot_patch_panels(patch, prediction, figures[1], title=data)
        summary["figures"] = str(folder)
    return run.result(None, summary, figures)
