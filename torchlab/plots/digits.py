"""Digit figures in the seed's colours: red = true class, green = predicted, blue = the others."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from torchlab.plots.common import save_figure


def bar_colours(true: int, pred: int, classes: int = 10) -> list[str]:
    return ["red" if c == true else ("green" if c == pred else "blue") for c in range(classes)]


def _draw(ax_img, ax_bar, image: np.ndarray, probs: np.ndarray, true: int, index: int) -> None:
    pred = int(np.argmax(probs))
    ax_img.imshow(image, cmap="gray_r" if image.max() > 1.5 else "gray")
    ax_img.set_title(f"test image {index}\ntrue {true}, predicted {pred}", fontsize=9)
    ax_img.axis("off")
    ax_bar.bar(range(len(probs)), probs, color=bar_colours(true, pred, len(probs)))
    ax_bar.set_xticks(range(len(probs)))
    ax_bar.set_ylim(0, 1)
    ax_bar.set_xlabel("class")
    ax_bar.set_ylabel("probability")


def plot_prediction(image: np.ndarray, probs: np.ndarray, true: int, index: int, path: str | os.PathLike) -> Path:
    """One test image beside its ten class probabilities."""
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(7, 3.2), gridspec_kw={"width_ratios": [1, 1.6]})
    _draw(ax_img, ax_bar, image, probs, true, index)
    fig.suptitle("red = true class, green = predicted, blue = others", fontsize=8, y=0.02)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_misclassified(
    images: np.ndarray, probs: np.ndarray, true: np.ndarray, indices: np.ndarray, path: str | os.PathLike, limit: int = 5
) -> Path:
    """The first `limit` misclassified test images, each above its probability bars."""
    wrong = [i for i in range(len(true)) if int(np.argmax(probs[i])) != int(true[i])][:limit]
    cols = max(len(wrong), 1)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 5), squeeze=False)
    if not wrong:
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        axes[0, 0].axis("off")
        axes[1, 0].axis("off")
    for col, i in enumerate(wrong):
        _draw(axes[0, col], axes[1, col], images[i], probs[i], int(true[i]), int(indices[i]))
    fig.suptitle("misclassified test images (red = true class, green = predicted)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
