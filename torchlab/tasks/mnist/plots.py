"""MNIST figures: learning curves, confusion matrix, the most confident mistakes, first-layer
filters and the assignment's activation panels (feature maps after every conv/pool/ReLU layer)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from torchlab.reporting.figures import plot_confusion_matrix, plot_history, save_figure


def plot_misclassified(
    images: np.ndarray,
    probs: np.ndarray,
    true: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    limit: int = 24,
) -> Path:
    """The `limit` most confident mistakes: each digit titled with its true and predicted class and their
    probabilities."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != true)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:limit]
    cols = 8
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.95 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if len(wrong) == 0:
        axes[0, 0].text(0, 0.5, "no misclassified test images", fontsize=11)
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
        t, p = int(true[i]), int(pred[i])
        ax.set_title(
            f"#{i}: {classes[t]} as {classes[p]}\np({classes[p]})={probs[i, p]:.2f} p({classes[t]})={probs[i, t]:.2f}",
            fontsize=7.5,
        )
    errors = len(np.flatnonzero(pred != true))
    shown = "all shown" if len(wrong) == errors else f"the {len(wrong)} most confident shown"
    fig.suptitle(
        f"{errors} {'error' if errors == 1 else 'errors'} in {len(true)} test images, {shown} "
        "(#index: true as predicted)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)


def first_layer_weights(model: nn.Module) -> np.ndarray:
    """The first layer's weights as images: conv kernels (out, kh, kw) or dense units (out, 28, 28)."""
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            return layer.weight.detach().float().cpu()[:, 0].numpy()
        if isinstance(layer, nn.Linear) and layer.in_features == 28 * 28:
            return layer.weight.detach().float().cpu().reshape(-1, 28, 28).numpy()
    raise ValueError(f"{type(model).__name__} has no first conv or 784-input dense layer")


def plot_filters(model: nn.Module, path: str | os.PathLike, limit: int = 32, title: str = "") -> Path:
    """First-layer filters on one color scale shared by all of them (red > 0, blue < 0), with its color bar."""
    weights = first_layer_weights(model)[:limit]
    cols = min(8, len(weights))
    rows = int(np.ceil(len(weights) / cols))
    cell = 1.4 if len(weights) > 2 else 3.0  # a lone 28x28 weight image (mnist-linear) gets room
    fig, axes = plt.subplots(
        rows, cols, figsize=(cell * cols + 1.0, (cell + 0.1) * rows + 0.5), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    bound = float(np.abs(weights).max()) or 1.0
    for k, (ax, w) in enumerate(zip(axes.flat, weights)):
        image = ax.imshow(w, cmap="RdBu_r", vmin=-bound, vmax=bound)
        ax.set_title(f"{k}", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.9 if rows > 1 else 1.0, label="weight (one scale for all filters)")
    shape = "x".join(map(str, weights.shape[1:]))
    fig.suptitle(title or f"first-layer weights ({shape}; red > 0, blue < 0)", fontsize=10)
    return save_figure(fig, path)


def channel_gap(width: int) -> int:
    """Blank columns between two channels of `width` pixels: about a seventh of a channel, at least one."""
    return max(1, round(width / 7))


def channel_strip(channels: np.ndarray) -> np.ndarray:
    """Channels (c, h, w) side by side in one image, blank (NaN) columns between two (channel_gap)."""
    count, height, width = channels.shape
    gap = channel_gap(width)
    strip = np.full((height, count * (width + gap) - gap), np.nan, dtype=np.float32)
    for k in range(count):
        strip[:, k * (width + gap) : k * (width + gap) + width] = channels[k]
    return strip


def plot_feature_maps(
    maps: list[tuple[str, torch.Tensor]], image: np.ndarray, path: str | os.PathLike, channels: int = 8, title: str = ""
) -> Path:
    """One row per layer (conv, pool, batch norm, ReLU, ...) showing its first `channels` channels.

    Each row shares one color scale, shown by the color bar at its end, so its channels compare:
    red/blue around 0 for a layer with negative outputs, dark to bright from 0 for the others.
    A row is one image (the channels side by side), which draws in a fraction of the time of one
    panel per channel.
    """
    cols = min(channels, max(m.shape[1] for _, m in maps))
    fig, axes = plt.subplots(len(maps) + 1, 1, figsize=(1.0 * cols + 2.4, 1.3 * (len(maps) + 1)), squeeze=False)
    axes = axes[:, 0]
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[0].imshow(image, cmap="gray_r")
    axes[0].set_anchor("W")
    axes[0].set_ylabel("input", rotation=0, ha="right", va="center", fontsize=8)
    for ax, (name, output) in zip(axes[1:], maps):
        fmap = output[0].float().numpy()
        shown = fmap[: min(cols, fmap.shape[0])]
        ax.set_ylabel(
            f"{name}\n{fmap.shape[0]}x{fmap.shape[1]}x{fmap.shape[2]}", rotation=0, ha="right", va="center", fontsize=8
        )
        low, high = float(shown.min()), float(shown.max())
        if low < 0:
            bound = max(-low, high) or 1.0
            cmap, vmin, vmax = "RdBu_r", -bound, bound
        else:
            cmap, vmin, vmax = "viridis", 0.0, high or 1.0
        colors = plt.get_cmap(cmap).with_extremes(bad="white")  # the gaps between channels
        im = ax.imshow(channel_strip(shown), cmap=colors, vmin=vmin, vmax=vmax, aspect="auto")  # same box each row
        width, gap = fmap.shape[2], channel_gap(fmap.shape[2])
        ax.set_xticks([k * (width + gap) + (width - 1) / 2 for k in range(len(shown))])
        ax.set_xticklabels([f"ch {k}" for k in range(len(shown))], fontsize=6)
        ax.tick_params(length=0, pad=1)
        bar = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, aspect=8)
        bar.ax.tick_params(labelsize=6)
    fig.suptitle(title or "feature maps after each layer", fontsize=10)
    fig.subplots_adjust(left=0.14, right=0.98, top=0.95, bottom=0.02, hspace=0.45)
    return save_figure(fig, path)


def write_mnist_figures(
    history: list[dict[str, float]],
    model: nn.Module,
    data,
    probs: torch.Tensor,
    normalization: dict[str, Any] | None,
    folder: Path,
    title: str = "mnist",
) -> list[Path]:
    """Every MNIST figure for a finished run, in `folder`: curves, confusion matrix, mistakes, filters and
    feature maps (of test images normalized with `normalization`); returns their paths."""
    from torchlab.data.splits import normalize
    from torchlab.engine.inference import model_device
    from torchlab.models.mnist import feature_maps

    folder = Path(folder)
    true = data.y_test.long().numpy()
    p = probs.numpy()
    images = data.x_test[:, 0].numpy()
    classes = data.class_names()
    paths = [
        plot_history(history, folder / "curves.png", title=title),
        plot_confusion_matrix(
            true,
            p.argmax(axis=1),
            folder / "confusion.png",
            labels=classes,
            title=f"{title} test set (accuracy {np.mean(true == p.argmax(axis=1)):.4f})",
        ),
        plot_misclassified(images, p, true, classes, folder / "misclassified.png"),
        plot_filters(model, folder / "filters.png", title=f"{title}: first-layer weights (red > 0, blue < 0)"),
    ]
    device = model_device(model)
    model.eval()
    for k in range(2):
        x = normalize(data.x_test[k : k + 1], normalization).to(device)
        maps = feature_maps(model, x)
        if maps:
            label = classes[int(true[k])]
            paths.append(
                plot_feature_maps(
                    maps,
                    images[k],
                    folder / f"feature_maps_{k}.png",
                    title=f"{title}: feature maps of test image {k} (a {label}); one color scale per row",
                )
            )
    return paths
