"""Maps of a function of the plane: values on a grid, shown as an image, with circles and diamonds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import torch

PointFn = Callable[[torch.Tensor], torch.Tensor]


def grid_values(
    fn: PointFn, extent: float | tuple[float, float, float, float], resolution: int = 400
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate fn((N, 2) points) -> (N,) on a square grid; returns X1, X2, values as (res, res) arrays."""
    if np.isscalar(extent):
        half = cast(float, extent)
        x_lo, x_hi, y_lo, y_hi = -half, half, -half, half
    else:
        x_lo, x_hi, y_lo, y_hi = cast(tuple[float, float, float, float], extent)
    x1, x2 = torch.meshgrid(
        torch.linspace(x_lo, x_hi, resolution), torch.linspace(y_lo, y_hi, resolution), indexing="xy"
    )
    with torch.no_grad():
        values = fn(torch.stack([x1.reshape(-1), x2.reshape(-1)], dim=1)).reshape(x1.shape)
    return x1.numpy(), x2.numpy(), values.float().numpy()


def show_map(ax, x1: np.ndarray, x2: np.ndarray, values: np.ndarray, **style):
    """Show grid values (rows = x2, columns = x1, as `grid_values` makes them) as an image over their extent."""
    extent = (float(x1.min()), float(x1.max()), float(x2.min()), float(x2.max()))
    return ax.imshow(np.asarray(values, dtype=float), extent=extent, origin="lower", interpolation="nearest", **style)


def draw_circles(ax, radii: Sequence[float], **style) -> None:
    t = np.linspace(0, 2 * np.pi, 400)
    for r in radii:
        ax.plot(r * np.cos(t), r * np.sin(t), **style)


def draw_diamonds(ax, radii: Sequence[float], **style) -> None:
    for r in radii:
        ax.plot([r, 0, -r, 0, r], [0, r, 0, -r, 0], **style)


def square_view(ax, extent: float, title: str) -> None:
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title, fontsize=10)
