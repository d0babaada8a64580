"""Keypoint figures: faces with true (green) and predicted keypoints, per-keypoint RMSE bars, photo overlays.

Colors follow the seed: green = true keypoints, red = the FCN's predictions, blue = the CNN's;
keypoint-net's are orange.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import matplotlib.pyplot as plt
import numpy as np

from torchlab.data.keypoints import KEYPOINT_NAMES, KeypointSplit, KeypointTable
from torchlab.reporting.figures import plot_history, save_figure
from torchlab.tasks.keypoints.kaggle import overall_rmse_from

MODEL_COLORS = {"keypoint-fcn": "red", "keypoint-cnn": "blue", "keypoint-net": "darkorange"}


def plot_faces(
    images: np.ndarray,
    truth: np.ndarray | None,
    predictions: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    title: str = "",
    columns: int = 5,
) -> Path:
    """A grid of faces: true keypoints as green dots, each model's predictions as crosses in its color.

    images (k, 96, 96); truth (k, 30) with NaN where unlabeled (or None); predictions label -> (k, 30).
    """
    k = len(images)
    columns = min(columns, k)
    rows = -(-k // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.3 * rows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= k:
            continue
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255 if images.max() > 1.5 else 1)
        if truth is not None:
            ax.scatter(
                truth[i, 0::2], truth[i, 1::2], c="lime", s=14, edgecolors="darkgreen", linewidths=0.5, label="true"
            )
        for label, pred in predictions.items():
            ax.scatter(
                pred[i, 0::2],
                pred[i, 1::2],
                c=MODEL_COLORS.get(label, "magenta"),
                s=18,
                marker="x",
                linewidths=1.2,
                label=label,
            )
        ax.set_xlim(-0.5, images.shape[-1] - 0.5)  # predictions off the image must not rescale it
        ax.set_ylim(images.shape[-2] - 0.5, -0.5)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05 if handles else 0, 1, 1))
    return save_figure(fig, path)


def plot_keypoint_rmse(
    names: Sequence[str], rmse: Mapping[str, np.ndarray], path: str | os.PathLike, title: str = ""
) -> Path:
    """Horizontal bars of RMSE (pixels) per keypoint, one bar color per model (label -> (15,))."""
    labels = list(rmse)
    height = 0.8 / max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) * max(1, len(labels) * 0.6) + 1.5))
    positions = np.arange(len(names))
    for j, label in enumerate(labels):
        values = np.asarray(rmse[label], dtype=float)
        ax.barh(positions + j * height, values, height, color=MODEL_COLORS.get(label, "gray"), label=label)
        for pos, value in zip(positions + j * height, values):
            if np.isfinite(value):
                ax.text(value, pos, f" {value:.2f}", va="center", fontsize=7)
    ax.set_yticks(positions + height * (len(labels) - 1) / 2, [n.replace("_", " ") for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("RMSE (pixels)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "validation RMSE per keypoint")
    fig.tight_layout()
    return save_figure(fig, path)


# keypoint groups of the photo overlay: (label, words in the keypoint's name, marker, color)
POINT_GROUPS = (
    ("eye centers", ("eye_center",), "o", "red"),
    ("eye corners", ("eye_inner_corner", "eye_outer_corner"), "^", "orange"),
    ("eyebrow ends", ("eyebrow",), "s", "magenta"),
    ("nose tip", ("nose",), "D", "cyan"),
    ("mouth corners and lips", ("mouth",), "v", "yellow"),
)


def plot_photo_keypoints(
    photo: np.ndarray,
    points: np.ndarray | Sequence[np.ndarray],
    crop: tuple[int, int, int] | Sequence[tuple[int, int, int]],
    path: str | os.PathLike,
    title: str = "",
    labels: Sequence[str] | None = None,
) -> Path:
    """The user's photo with each face's predicted keypoints (15, 2) in its own pixels and the square the model saw.

    One face: `points` (15, 2) and `crop` (x0, y0, side); several: a list of each. The points are
    grouped (eyes, eye corners, eyebrows, nose, mouth) by marker and color in a legend, which also
    explains the dashed squares: what was resized to 96x96 for the model (keypoints outside a square
    are extrapolations). Each square is labeled (`labels`, default "face 1", "face 2", ...).
    """
    from torchlab.data.keypoints import IMAGE_SIZE, KEYPOINT_NAMES

    faces = np.asarray(points, dtype=np.float64).reshape(-1, len(KEYPOINT_NAMES), 2)
    if np.ndim(crop) == 1:
        crops = [tuple(cast(tuple[int, int, int], crop))]
    else:
        crops = [tuple(c) for c in cast(Sequence[tuple[int, int, int]], crop)]
    labels = list(labels) if labels is not None else [f"face {k + 1}" for k in range(len(faces))]
    height, width = photo.shape[:2]
    fig, ax = plt.subplots(figsize=(6, 6 * height / max(width, 1) + 0.9))
    ax.imshow(photo, cmap="gray" if photo.ndim == 2 else None)
    what = (
        f"the square the model saw ({crops[0][2]}x{crops[0][2]} px, resized to {IMAGE_SIZE}x{IMAGE_SIZE})"
        if len(crops) == 1
        else f"the squares the model saw (each resized to {IMAGE_SIZE}x{IMAGE_SIZE})"
    )
    for k, ((x0, y0, size), label) in enumerate(zip(crops, labels)):
        ax.add_patch(
            plt.Rectangle(
                (x0 - 0.5, y0 - 0.5),
                size,
                size,
                fill=False,
                ec="yellow",
                lw=1.2,
                ls="--",
                label=what if k == 0 else None,
            )
        )
        ax.text(
            max(x0, 0),
            max(y0, 0),
            f" {label}",
            color="black",
            fontsize=8,
            va="top",
            ha="left",
            bbox={"facecolor": "yellow", "alpha": 0.8, "pad": 1.5, "linewidth": 0},
        )
    marker = max(16.0, 36.0 * min(c[2] for c in crops) / 400)
    for label, words, shape, color in POINT_GROUPS:
        rows = [i for i, name in enumerate(KEYPOINT_NAMES) if any(w in name for w in words)]
        xy = faces[:, rows].reshape(-1, 2)
        ax.scatter(
            xy[:, 0],
            xy[:, 1],
            c=color,
            marker=shape,
            s=marker,
            edgecolors="black",
            linewidths=0.6,
            label=f"{label} ({len(xy)})",
            zorder=3,
        )
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis("off")
    ax.set_title(title or "predicted keypoints", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, fontsize=7.5, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def write_keypoint_figures(
    history: list[dict[str, float]],
    table: KeypointTable,
    split: KeypointSplit,
    pred: np.ndarray,
    per_kp: np.ndarray,
    folder: Path,
    name: str,
) -> list[Path]:
    """Loss curves, predictions on validation faces, RMSE per keypoint, and some training faces."""
    paths = [folder / f for f in ("loss.png", "faces.png", "keypoint_rmse.png", "training_faces.png")]
    plot_history(history, paths[0], title=f"{name}: masked MSE (pixels²) and RMSE (pixels)")
    shown = np.arange(min(10, len(split.val)))
    rows = split.val[shown]
    plot_faces(
        table.images[rows],
        table.keypoints[rows],
        {name: pred[shown]},
        paths[1],
        title=f"{name} on validation faces (green: true)",
    )
    plot_keypoint_rmse(
        KEYPOINT_NAMES,
        {name: per_kp},
        paths[2],
        title=f"{name}: validation RMSE per keypoint (overall {overall_rmse_from(per_kp):.3f} px)",
    )
    sample = split.train[:9]
    plot_faces(
        table.images[sample],
        table.keypoints[sample],
        {},
        paths[3],
        columns=3,
        title="training faces and their labeled keypoints",
    )
    return paths
