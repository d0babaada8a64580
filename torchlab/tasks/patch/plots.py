"""patch-linear figures: the loss against the least-squares floor, and original | prediction | residual."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

from torchlab.reporting.figures import save_figure


def plot_patch_loss(losses: Sequence[float], floor: float, path: str | os.PathLike, title: str = "") -> Path:
    """MSE per epoch on a log scale, with the least-squares MSE (the lowest reachable) dashed."""
    epochs = np.arange(1, len(losses) + 1)
    values = np.asarray(losses, dtype=float)
    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot(epochs, values, label="gradient descent")
    ax.axhline(floor, color="k", ls="--", lw=1, label=f"least squares ({floor:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error (gray levels²)")
    ax.set_title("training error")
    ax.grid(alpha=0.3)
    ax.legend()
    gap = values - floor
    resolution = 1e-6 * max(floor, 1e-12)  # below this the float32 training loss is round-off
    shown = gap > resolution
    ax_gap.plot(epochs[shown], gap[shown], color="C1")
    ax_gap.axhline(resolution, color="0.5", ls=":", lw=1, label="float32 round-off")
    ax_gap.legend()
    ax_gap.set_yscale("log")
    ax_gap.set_xlabel("epoch")
    ax_gap.set_ylabel("MSE − least-squares MSE")
    ax_gap.set_title("distance to the best possible fit")
    ax_gap.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_patch_panels(patch: np.ndarray, prediction: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """original | prediction (one shared gray scale) | residual (diverging colors centered on 0)."""
    residual = patch - prediction
    lo, hi = float(min(patch.min(), prediction.min())), float(max(patch.max(), prediction.max()))
    bound = float(np.abs(residual).max()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, image, name in ((axes[0], patch, "original"), (axes[1], prediction, "prediction w0 + w1·x + w2·y")):
        im = ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(name)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="brightness")
    im = axes[2].imshow(residual, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -bound, bound))
    axes[2].set_title(f"residual original − prediction (RMS {np.sqrt(np.mean(residual**2)):.2f})")
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04, label="gray levels")
    for ax in axes:
        ax.set_xlabel("x (column)")
        ax.set_ylabel("y (row)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
