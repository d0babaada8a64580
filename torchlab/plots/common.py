"""Figures every task uses: learning curves and confusion matrices, saved atomically as PNG."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY") and os.environ.get("MPLBACKEND") is None:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from torchlab.checkpoint import atomic_write_bytes  # noqa: E402


def save_figure(fig: "plt.Figure", path: str | os.PathLike, dpi: int = 120) -> Path:
    """Render `fig` to PNG and write it atomically; close the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_history(history: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "") -> Path:
    """Train/val loss per epoch (left) and every other train/val metric (right, if any)."""
    epochs = [row["epoch"] for row in history]
    metric_names = sorted({k[4:] for row in history for k in row if k.startswith("val_") and k != "val_loss"}
                          | {k[6:] for row in history for k in row if k.startswith("train_") and k != "train_loss"})
    ncols = 2 if metric_names else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        values = [row.get(key, np.nan) for row in history]
        if not np.all(np.isnan(values)):
            ax.plot(epochs, values, style, marker="o", markersize=3, label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    positive = [row.get("train_loss", 1) for row in history] + [row.get("val_loss", 1) for row in history]
    if all(v > 0 for v in positive if v == v):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("loss")
    if metric_names:
        ax = axes[0, 1]
        for name in metric_names:
            for prefix, style in (("train_", "-"), ("val_", "--")):
                values = [row.get(prefix + name, np.nan) for row in history]
                if not np.all(np.isnan(values)):
                    ax.plot(epochs, values, style, marker="o", markersize=3, label=f"{prefix[:-1]} {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(", ".join(metric_names))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion_matrix(
    true: np.ndarray, pred: np.ndarray, path: str | os.PathLike, labels: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Counts of true class (rows) vs predicted class (columns), with the numbers written in."""
    k = int(max(true.max(), pred.max())) + 1 if labels is None else len(labels)
    labels = list(labels) if labels is not None else [str(i) for i in range(k)]
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (np.asarray(true, dtype=int), np.asarray(pred, dtype=int)), 1)
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.5, 0.55 * k + 2))
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    threshold = matrix.max() / 2
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > threshold else "black")
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(title or f"confusion matrix (accuracy {acc:.4f})")
    return save_figure(fig, path)
