"""ring-mlp figures: the trained net's probability map beside the hand-set ring net's decision map."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from torch import nn

from torchlab.engine.inference import predict_outputs
from torchlab.models import build_model
from torchlab.reporting.figures import plot_history, save_figure
from torchlab.reporting.plane import (
    PointFn,
    draw_circles,
    grid_values,
    show_map,
    square_view,
)


def plot_trained_ring_maps(
    trained: PointFn,
    hand: torch.nn.Module,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    extent: float,
    path: str | os.PathLike,
    rings: tuple[float, float] | None = None,
    names: tuple[str, str] = ("label 1 (in the ring)", "label 0 (outside)"),
) -> Path:
    """Trained net's probability map | hand-set net's decision map, the test points on both."""
    x1, x2, logit = grid_values(trained, extent)
    _, _, score = grid_values(hand, extent)
    prob = 1.0 / (1.0 + np.exp(-logit))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    labels = y_test.numpy() > 0.5
    with torch.no_grad():
        trained_acc = float(((trained(x_test) >= 0).numpy() == labels).mean())
        hand_acc = float(((hand(x_test) >= 0).numpy() == labels).mean())
    im = show_map(axes[0], x1, x2, prob, cmap="RdBu_r", vmin=0, vmax=1)
    axes[0].contour(x1, x2, prob, levels=[0.5], colors="k", linewidths=1.2)
    fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.04, label="P(in the ring)")
    square_view(axes[0], extent, f"trained 2→16→1 net: test accuracy {trained_acc:.3f}")
    show_map(axes[1], x1, x2, score >= 0, cmap=ListedColormap(["#f4f4f4", "#f4a582"]), vmin=0, vmax=1)
    axes[1].contour(x1, x2, score, levels=[0.0], colors="k", linewidths=1.2)
    square_view(axes[1], extent, f"hand-set ring net a={hand.a:g}, b={hand.b:g}: test accuracy {hand_acc:.3f}")
    pts = x_test.numpy()
    for ax in axes:
        ax.scatter(pts[labels, 0], pts[labels, 1], s=12, c="#b2182b", edgecolors="k", linewidths=0.3, label=names[0])
        ax.scatter(pts[~labels, 0], pts[~labels, 1], s=12, c="#2166ac", edgecolors="k", linewidths=0.3, label=names[1])
        if rings is not None:
            draw_circles(ax, rings, color="k", lw=0.8, ls="--")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def write_ring_figures(
    model: nn.Module,
    history: list[dict[str, float]],
    data: dict[str, Any],
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    folder: Path,
) -> list[Path]:
    """Loss curve and the decision map of the trained net next to the hand-set one."""
    paths = [folder / "loss.png", folder / "decision_map.png"]
    plot_history(history, paths[0], title=f"ring-mlp on {data['dataset']}")
    trained = lambda pts: predict_outputs(model, pts)  # noqa: E731
    hand = build_model("ring-net", a=data["a"], b=data["b"])
    if data["dataset"] == "ring":
        plot_trained_ring_maps(trained, hand, x_test, y_test, data["box"], paths[1], rings=(data["a"], data["b"]))
    else:
        plot_trained_ring_maps(
            trained, hand, x_test, y_test, 3.6, paths[1], names=("label 1 (radius 1.1)", "label 0 (radius 3)")
        )
    return paths
