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
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from torchlab.runtime.files import atomic_write_bytes  # noqa: E402


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Render `fig` to PNG and write it atomically; close the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


MARKERS_UP_TO = 30  # epochs; longer curves are plain lines (1000 markers merge into a blob)


def epoch_axis(ax, epochs: Sequence[float]) -> None:
    """Whole-number epoch ticks; a short run gets one tick per epoch and half an epoch of margin."""
    ax.set_xlabel("epoch")
    if len(epochs) and max(epochs) - min(epochs) <= 12:
        ax.set_xticks(sorted(set(int(e) for e in epochs)))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))


def curve_style(points: int) -> dict:
    """Markers on short curves (a single point is only a marker), none on long ones."""
    return {"marker": "o", "markersize": 4 if points > 1 else 6} if points <= MARKERS_UP_TO else {}


def plain_log_axis(ax, axis: str = "y") -> None:
    """A log axis labeled with plain numbers (0.2, 0.5, 1, 2) instead of 2×10⁰-style labels."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if hi / lo < 10:  # under a decade: enough labels to read values off
        subs: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    else:
        subs = (1.0, 2.0, 5.0) if hi / lo < 100 else (1.0,)
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(NullFormatter())


def plot_history(history: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "") -> Path:
    """Train/val loss per epoch (left) and every other train/val metric (right, if any)."""
    epochs = [row["epoch"] for row in history]
    metric_names = sorted(
        {k[4:] for row in history for k in row if k.startswith("val_") and k != "val_loss"}
        | {k[6:] for row in history for k in row if k.startswith("train_") and k != "train_loss"}
    )
    ncols = 2 if metric_names else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4), squeeze=False)
    style = curve_style(len(epochs))
    ax = axes[0, 0]
    for key, line in (("train_loss", "-"), ("val_loss", "--")):
        values = [row.get(key, np.nan) for row in history]
        if not np.all(np.isnan(values)):
            ax.plot(epochs, values, line, label=key.replace("_", " "), **style)
    epoch_axis(ax, epochs)
    ax.set_ylabel("loss")
    positive = [row.get("train_loss", 1) for row in history] + [row.get("val_loss", 1) for row in history]
    if all(v > 0 for v in positive if v == v):
        ax.set_yscale("log")
        plain_log_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("loss")
    if metric_names:
        ax = axes[0, 1]
        for name in metric_names:
            for prefix, line in (("train_", "-"), ("val_", "--")):
                values = [row.get(prefix + name, np.nan) for row in history]
                if not np.all(np.isnan(values)):
                    ax.plot(epochs, values, line, label=f"{prefix[:-1]} {name}", **style)
        epoch_axis(ax, epochs)
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
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if matrix[i, j] > threshold else "black",
                )
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(title or f"confusion matrix (accuracy {acc:.4f})")
    return save_figure(fig, path)
