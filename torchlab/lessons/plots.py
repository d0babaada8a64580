"""Figures of the lessons: the hand-set ring net's maps, network landscapes, descent paths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import TABLEAU_COLORS, ListedColormap, TwoSlopeNorm
from matplotlib.ticker import MaxNLocator

from torchlab.reporting.figures import save_figure
from torchlab.reporting.plane import (
    draw_circles,
    draw_diamonds,
    grid_values,
    show_map,
    square_view,
)

# ------------------------------------------------------------------ ring net


def plot_ring_regions(
    net: torch.nn.Module, a: float, b: float, extent: float, points: torch.Tensor, path: str | os.PathLike
) -> Path:
    """circular ring | L1 ring | the net's decision map (score >= 0), with the test points on the map."""
    x1, x2, score = grid_values(net, extent)
    radius = np.hypot(x1, x2)
    l1 = np.abs(x1) + np.abs(x2)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    inside = ListedColormap(["white", "#4c72b0"])
    show_map(axes[0], x1, x2, (radius >= a) & (radius <= b), cmap=inside, vmin=0, vmax=1)
    square_view(axes[0], extent, f"circular ring {a:g} ≤ √(x1²+x2²) ≤ {b:g}")
    show_map(axes[1], x1, x2, (l1 >= a) & (l1 <= b), cmap=ListedColormap(["white", "#c44e52"]), vmin=0, vmax=1)
    square_view(axes[1], extent, f"L1 ring {a:g} ≤ |x1|+|x2| ≤ {b:g}")
    bound = float(np.abs(score).max()) or 1.0
    im = show_map(axes[2], x1, x2, score, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -bound, bound))
    axes[2].contour(x1, x2, score, levels=[0.0], colors="k", linewidths=1.2)
    with torch.no_grad():
        inside_pts = net(points) >= 0
    pts = points.numpy()
    axes[2].scatter(
        pts[inside_pts.numpy(), 0],
        pts[inside_pts.numpy(), 1],
        marker="o",
        s=45,
        c="gold",
        edgecolors="k",
        label="in ring",
        zorder=3,
    )
    axes[2].scatter(
        pts[~inside_pts.numpy(), 0], pts[~inside_pts.numpy(), 1], marker="X", s=60, c="k", label="outside", zorder=3
    )
    axes[2].legend(loc="upper right", fontsize=8)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04, label="score (≥ 0: in the ring)")
    square_view(axes[2], extent, "ring-net decision map (black line: score = 0)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ring_misclassified(
    a: float,
    b: float,
    diamonds: Sequence[tuple[float, float, float, str]],
    extent: float,
    path: str | os.PathLike,
    resolution: int = 400,
) -> Path:
    """For each L1 ring (a2, b2, area, label): where it and the circular ring (a, b) disagree."""
    axis = np.linspace(-extent, extent, resolution)
    x1, x2 = np.meshgrid(axis, axis)
    radius, l1 = np.hypot(x1, x2), np.abs(x1) + np.abs(x2)
    ring_area = np.pi * (b * b - a * a)
    fig, axes = plt.subplots(1, len(diamonds), figsize=(6 * len(diamonds), 5.6), squeeze=False)
    colors = ListedColormap(["white", "#dd8452", "#4c72b0", "#d9d9d9"])
    for ax, (a2, b2, area, label) in zip(axes[0], diamonds):
        circle = (radius >= a) & (radius <= b)
        diamond = (l1 >= a2) & (l1 <= b2)
        code = np.where(circle & diamond, 3, np.where(circle, 2, np.where(diamond, 1, 0)))
        show_map(ax, x1, x2, code, cmap=colors, vmin=-0.5, vmax=3.5)
        draw_circles(ax, [a, b], color="#4c72b0", lw=1)
        draw_diamonds(ax, [a2, b2], color="#dd8452", lw=1)
        square_view(
            ax,
            extent,
            f"{label} L1 ring a'={a2:.4g}, b'={b2:.4g}: misclassified area {area:.3f}\n"
            f"= {area / ring_area:.1%} of the circular ring's area {ring_area:.3f}",
        )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("#4c72b0", "#dd8452", "#d9d9d9")]
    fig.legend(
        handles,
        ["in the circular ring only (missed)", "in the L1 ring only (false alarm)", "in both (right)"],
        loc="lower center",
        ncol=3,
        fontsize=9,
    )
    fig.suptitle(f"the net's L1 ring standing in for the circular ring {a:g} ≤ |x| ≤ {b:g}")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save_figure(fig, path)


# ------------------------------------------------------------------ landscapes


def plot_landscape_surface(net: torch.nn.Module, limit: float, path: str | os.PathLike, title: str = "") -> Path:
    """The graph z = Phi(x1, x2) as a 3-D surface."""
    x1, x2, z = grid_values(net, limit, resolution=61)  # odd: the grid holds x = 0 and y = 0
    fig = plt.figure(figsize=(7.5, 6))
    ax = fig.add_subplot(111, projection="3d")
    ax.plot_surface(x1, x2, z, cmap="viridis", linewidth=0, antialiased=True, rcount=61, ccount=61)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_zlabel("Φ(x1, x2)")
    ax.set_title(title or "network landscape")
    ax.view_init(elev=28, azim=-125)
    fig.tight_layout()
    return save_figure(fig, path)


def _kink_lines(ax, net: torch.nn.Module, limit: float) -> None:
    """Dashed lines where a hidden unit switches (w . x + c = 0): the creases of the landscape."""
    hidden = cast(torch.nn.Linear, net.hidden)
    w = hidden.weight.detach().numpy()
    c = hidden.bias.detach().numpy()
    t = np.linspace(-limit, limit, 2)
    for (w1, w2), ci in zip(w, c):
        if abs(w2) > abs(w1):
            ax.plot(t, -(w1 * t + ci) / w2, color="k", ls="--", lw=0.9)
        elif abs(w1) > 0:
            ax.plot(-(w2 * t + ci) / w1, t, color="k", ls="--", lw=0.9)


def plot_landscape_contour(
    net: torch.nn.Module, limit: float, path: str | os.PathLike, title: str = "", regions: int | None = None
) -> Path:
    """Level curves of Phi with the kink lines dashed; the level curves bend only on those lines."""
    x1, x2, z = grid_values(net, limit, resolution=300)
    fig, ax = plt.subplots(figsize=(6.8, 6))
    filled = ax.contourf(x1, x2, z, levels=20, cmap="viridis", alpha=0.35)
    lines = ax.contour(x1, x2, z, levels=20, cmap="viridis")
    ax.clabel(lines, inline=True, fontsize=7)
    fig.colorbar(filled, ax=ax, fraction=0.046, pad=0.04, label="Φ(x1, x2)")
    _kink_lines(ax, net, limit)
    extra = f"; {regions} linear pieces in view" if regions is not None else ""
    square_view(ax, limit, (title or "contours of Φ") + f"\n(dashed: kink lines, one per hidden unit{extra})")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_line_pieces(
    nets: Sequence[tuple[int, torch.nn.Module, list[float], int]],
    a: float,
    b: float,
    limit: float,
    path: str | os.PathLike,
) -> Path:
    """For each (n, net, kinks, pieces): top, contours with the line x2 = a*x1 + b; bottom, Phi along the
    line with its kinks marked."""
    fig, axes = plt.subplots(2, len(nets), figsize=(4.6 * len(nets), 8.4), squeeze=False)
    t = torch.linspace(-limit, limit, 801)
    line = torch.stack([t, a * t + b], dim=1)
    for col, (n, net, kinks, pieces) in enumerate(nets):
        top, bottom = axes[0, col], axes[1, col]
        x1, x2, z = grid_values(net, limit, resolution=200)
        top.contour(x1, x2, z, levels=15, cmap="viridis", linewidths=0.8)
        _kink_lines(top, net, limit)
        top.plot(t, a * t + b, color="C3", lw=2, label=f"x2 = {a:g}·x1 + {b:g}")
        top.legend(loc="upper left", fontsize=8)
        square_view(top, limit, f"2→{n}→1 net: contours and kink lines")
        with torch.no_grad():
            phi = net(line).numpy()
        bottom.plot(t.numpy(), phi, color="C3")
        if kinks:
            with torch.no_grad():
                at = net(torch.tensor([[k, a * k + b] for k in kinks])).numpy()
            bottom.plot(kinks, at, "ko", ms=5, label="kinks")
            bottom.legend(fontsize=8)
        bottom.set_xlim(-limit, limit)
        bottom.set_xlabel("x1 (along the line)")
        bottom.set_ylabel("Φ(x1, a·x1 + b)")
        kink_word = "kink" if len(kinks) == 1 else "kinks"
        bottom.set_title(
            f"{pieces} linear pieces ({len(kinks)} {kink_word}) for -{limit:g} < x1 < {limit:g}", fontsize=10
        )
        bottom.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


# ------------------------------------------------------------ gradient descent


def plot_descent(problem, paths: dict[float, torch.Tensor], path: str | os.PathLike) -> Path:
    """Level curves, gradient arrows and one path per learning rate (left); distance to the optimum per step (right)."""
    ox, oy = problem.optimum
    sx, sy = problem.start
    span = max(abs(sx - ox), abs(sy - oy)) * 1.6
    extent = (ox - span, ox + span, oy - span, oy + span)
    fn = lambda p: problem.fn(p[:, 0], p[:, 1])  # noqa: E731
    x1, x2, z = grid_values(fn, extent, resolution=300)
    fig, (ax, ax_dist) = plt.subplots(1, 2, figsize=(13, 5.6), gridspec_kw={"width_ratios": [1.1, 1]})
    lines = ax.contour(x1, x2, z, levels=14, colors="0.6", linewidths=0.8)
    ax.clabel(lines, inline=True, fontsize=7, fmt="%.0f")
    qx, qy = np.meshgrid(np.linspace(extent[0], extent[1], 13), np.linspace(extent[2], extent[3], 13))
    q = torch.tensor(np.stack([qx.ravel(), qy.ravel()], axis=1), requires_grad=True)
    (grad,) = torch.autograd.grad(problem.fn(q[:, 0], q[:, 1]).sum(), q)  # the gradient at every arrow's foot
    g = grad.numpy() / (np.linalg.norm(grad.numpy(), axis=1, keepdims=True) + 1e-12)
    ax.quiver(qx.ravel(), qy.ravel(), g[:, 0], g[:, 1], color="0.35", alpha=0.7, width=0.003, scale=30)
    for (eta, points), color in zip(paths.items(), TABLEAU_COLORS):
        pts = points.numpy()
        kept, exit_point, step = clip_to_view(pts, extent)
        label = f"η = {eta:g}" + (f" (leaves the view at step {step})" if step is not None else "")
        ax.plot(kept[:, 0], kept[:, 1], "o-", color=color, ms=3.5, lw=1.3, label=label)
        if exit_point is not None:  # the last segment up to the edge, with an arrow: the path goes on outside
            ax.annotate(
                "",
                xy=exit_point,
                xytext=kept[-1],
                annotation_clip=False,
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.3, "mutation_scale": 14},
            )
        distance = np.hypot(pts[:, 0] - ox, pts[:, 1] - oy)
        ax_dist.semilogy(np.arange(len(pts)), distance, "o-", color=color, ms=3, label=f"η = {eta:g}")
    # drawn last and on top: no path hides the optimum or the start
    ax.plot(
        ox, oy, "*", color="red", mec="white", mew=1.0, ms=17, zorder=5, label="summit" if problem.ascent else "minimum"
    )
    ax.plot(sx, sy, "s", color="black", mec="white", ms=8, zorder=5, label="start")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(
        f"{problem.name}\narrows: gradient direction (uphill); paths: gradient "
        f"{'ascent' if problem.ascent else 'descent'}",
        fontsize=10,
    )
    ax_dist.axhline(np.hypot(sx - ox, sy - oy), color="k", ls=":", lw=1, label="starting distance")
    ax_dist.set_xlabel("step")
    ax_dist.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax_dist.set_ylabel("distance to the optimum")
    ax_dist.set_title(f"η > {problem.largest_stable_eta:.3g} diverges (|1 − 6η| > 1)", fontsize=10)
    ax_dist.grid(alpha=0.3)
    ax_dist.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def clip_to_view(
    points: np.ndarray, extent: tuple[float, float, float, float]
) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """The path up to its last point before it first leaves the view box, where it crosses the box's
    edge, and the step that lands outside (None, None when the whole path stays in view)."""
    x_lo, x_hi, y_lo, y_hi = extent
    finite = np.isfinite(points).all(axis=1)
    inside = finite & (points[:, 0] >= x_lo) & (points[:, 0] <= x_hi) & (points[:, 1] >= y_lo) & (points[:, 1] <= y_hi)
    if inside.all():
        return points, None, None
    step = int(np.argmin(inside))  # the first point outside
    if step == 0:  # starts outside: nothing to draw inside
        return points[:0], None, 0
    a = points[step - 1]
    b = np.nan_to_num(points[step], nan=0.0, posinf=1e300, neginf=-1e300)
    d = b - a
    with np.errstate(divide="ignore", invalid="ignore"):  # how far along a -> b each edge lies
        tx = np.where(d[0] > 0, (x_hi - a[0]) / d[0], np.where(d[0] < 0, (x_lo - a[0]) / d[0], np.inf))
        ty = np.where(d[1] > 0, (y_hi - a[1]) / d[1], np.where(d[1] < 0, (y_lo - a[1]) / d[1], np.inf))
    t = min(float(tx), float(ty), 1.0)
    return points[:step], a + t * d, step
