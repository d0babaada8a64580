"""Digit figures: each test image beside its ten class probabilities.

The bars read without a legend: the true class's bar is green, a wrong prediction's bar is red,
the other classes are gray, and the bars are labeled "true" / "predicted" where they stand.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from torchlab.data.digits import DigitsSplit
from torchlab.reporting.figures import plot_confusion_matrix, plot_history, save_figure

TRUE_COLOR, WRONG_COLOR, OTHER_COLOR = "tab:green", "tab:red", "0.7"


def bar_colors(true: int, pred: int, classes: int = 10) -> list[str]:
    """Green for the true class (so a right prediction is one green bar), red for a wrong prediction."""
    return [TRUE_COLOR if c == true else (WRONG_COLOR if c == pred else OTHER_COLOR) for c in range(classes)]


def _draw(ax_img, ax_bar, image: np.ndarray, probs: np.ndarray, true: int, index: int) -> None:
    pred = int(np.argmax(probs))
    right = pred == true
    ax_img.imshow(image, cmap="gray_r" if image.max() > 1.5 else "gray")
    ax_img.set_title(
        f"test image {index}: a {true}\npredicted {pred} ({'right' if right else 'wrong'})",
        fontsize=9,
        color="black" if right else WRONG_COLOR,
    )
    ax_img.axis("off")
    ax_bar.bar(range(len(probs)), probs, color=bar_colors(true, pred, len(probs)))
    labels = {pred: "predicted\n= true" if right else "predicted"}
    if not right:
        labels[true] = "true"
    for c, text in labels.items():
        ax_bar.text(
            c,
            probs[c] + 0.02,
            f"{text}\n{probs[c]:.2f}",
            ha="center",
            va="bottom",
            fontsize=7,
            color=TRUE_COLOR if c == true else WRONG_COLOR,
        )
    ax_bar.set_xticks(range(len(probs)))
    ax_bar.set_ylim(0, 1.25)  # room for the labels above a bar near 1
    ax_bar.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax_bar.spines[["top", "right"]].set_visible(False)
    ax_bar.set_xlabel("class")
    ax_bar.set_ylabel("probability")


def plot_prediction(image: np.ndarray, probs: np.ndarray, true: int, index: int, path: str | os.PathLike) -> Path:
    """One test image beside its ten class probabilities."""
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(7, 3.2), gridspec_kw={"width_ratios": [1, 1.6]})
    _draw(ax_img, ax_bar, image, probs, true, index)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_misclassified(
    images: np.ndarray,
    probs: np.ndarray,
    true: np.ndarray,
    indices: np.ndarray,
    path: str | os.PathLike,
    limit: int = 5,
) -> Path:
    """The first `limit` misclassified test images, each above its probability bars."""
    errors = [i for i in range(len(true)) if int(np.argmax(probs[i])) != int(true[i])]
    wrong = errors[:limit]
    cols = max(len(wrong), 1)
    fig, axes = plt.subplots(2, cols, figsize=(3.0 * cols, 5.2), squeeze=False)
    if not wrong:
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        axes[0, 0].axis("off")
        axes[1, 0].axis("off")
    for col, i in enumerate(wrong):
        _draw(axes[0, col], axes[1, col], images[i], probs[i], int(true[i]), int(indices[i]))
    shown = f"the first {len(wrong)} shown" if len(errors) > len(wrong) else "all shown"
    fig.suptitle(f"{_errors(len(errors))} in {len(true)} test images, {shown}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _errors(n: int) -> str:
    return f"{n} error" if n == 1 else f"{n} errors"


def write_digit_figures(
    history: list[dict[str, float]], data: DigitsSplit, probs: np.ndarray, folder: Path
) -> list[Path]:
    """Loss curves, one prediction, the misclassified test digits and the confusion matrix."""
    true = data.y_test.numpy()
    pred = probs.argmax(axis=1)
    paths = [folder / name for name in ("loss.png", "prediction.png", "misclassified.png", "confusion.png")]
    plot_history(history, paths[0], title="digit-mlp")
    plot_prediction(data.images_test[0], probs[0], int(true[0]), 0, paths[1])
    plot_misclassified(data.images_test, probs, true, np.arange(len(true)), paths[2])
    plot_confusion_matrix(true, pred, paths[3], title=f"digit-mlp test set (accuracy {np.mean(true == pred):.4f})")
    return paths
