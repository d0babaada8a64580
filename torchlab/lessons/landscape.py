"""Where a 2->n->1 ReLU net bends: kinks along a line, linear pieces, activation regions.

Hidden unit i switches on or off where its pre-activation w_i . x + c_i crosses zero, a
straight line in the plane. On the line x2 = a*x1 + b the pre-activation is
p_i * x1 + q_i with p_i = w_i1 + a*w_i2 and q_i = b*w_i2 + c_i, so unit i puts a
kink at x1 = -q_i / p_i (if p_i != 0 and the unit's output weight is not 0). n units give at
most n kinks, hence at most n + 1 linear pieces along any line.

`landscape_lesson()` is what `torchlab landscape` prints and draws: Phi(1, -1) (-4 with the
notebook's weights), the planar pieces in view, and the pieces along a line for several n.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch

from torchlab.models import build_model, count_parameters
from torchlab.models.ring import LandscapeNet


def line_points(x1: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Points (x1, a*x1 + b), shape (N, 2)."""
    return torch.stack([x1, a * x1 + b], dim=1)


def kinks_on_line(net: LandscapeNet, a: float, b: float, lo: float = -math.inf, hi: float = math.inf) -> list[float]:
    """Sorted x1 positions in (lo, hi) where Phi restricted to x2 = a*x1 + b changes slope."""
    w = net.hidden.weight.detach().double()
    c = net.hidden.bias.detach().double()
    out = net.output.weight.detach().double().reshape(-1)
    slope = w[:, 0] + a * w[:, 1]
    offset = b * w[:, 1] + c
    active = (slope.abs() > 1e-12) & (out.abs() > 1e-12)
    positions = sorted((-offset[active] / slope[active]).tolist())
    kinks: list[float] = []
    for t in positions:  # two units switching at the same x1 make one kink
        if lo < t < hi and (not kinks or t - kinks[-1] > 1e-9):
            kinks.append(t)
    return kinks


def count_pieces(net: LandscapeNet, a: float, b: float, lo: float = -math.inf, hi: float = math.inf) -> int:
    """Number of linear pieces of Phi along x2 = a*x1 + b for x1 in (lo, hi): kinks + 1."""
    return len(kinks_on_line(net, a, b, lo, hi)) + 1


def count_pieces_numeric(net: LandscapeNet, a: float, b: float, lo: float, hi: float, samples: int = 20001) -> int:
    """The same count measured instead of derived: dPhi/dx1 by autograd on a fine grid of x1,
    one new piece wherever that slope changes between neighboring grid points (two kinks
    closer than the grid spacing would count as one)."""
    step = (hi - lo) / samples
    x1 = (lo + step * (torch.arange(samples, dtype=torch.float64) + 0.5 / math.pi)).requires_grad_(True)
    phi = copy.deepcopy(net).double()(line_points(x1, a, b))
    (slope,) = torch.autograd.grad(phi.sum(), x1)
    changes = (slope[1:] - slope[:-1]).abs() > 1e-9 * (1.0 + slope.abs().max())
    return int(changes.sum()) + 1  # each kink sits between two grid points whose slopes differ


def activation_regions(net: LandscapeNet, limit: float = 2.0, resolution: int = 400, chunk: int = 40_000) -> int:
    """How many planar pieces the surface shows on [-limit, limit]^2: distinct on/off patterns
    of the hidden units over a fine grid (regions thinner than the grid can be missed).

    Patterns are compared as whole rows (torch.unique over dim 0), chunk by chunk, so any
    number of hidden units is counted exactly and memory stays at `chunk` rows at a time.
    """
    axis = torch.linspace(-limit, limit, resolution)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        seen = [torch.unique(net.hidden(grid[i : i + chunk]) > 0, dim=0) for i in range(0, len(grid), chunk)]
    return int(torch.unique(torch.cat(seen), dim=0).shape[0])


@dataclass(frozen=True)
class LinePieces:
    """A random 2->n->1 net's linear pieces along the line, on the whole line and in view."""

    hidden: int
    kinks: list[float]  # x1 positions of the kinks in view
    pieces: int  # on the whole line (at most hidden + 1)
    pieces_in_view: int  # for |x1| < limit: kinks + 1
    measured_in_view: int  # the same, counted from autograd slopes


@dataclass(frozen=True)
class LandscapeLesson:
    """What `torchlab landscape` prints: the drawn net, its value at (1, -1), its pieces."""

    name: str  # "2->3->1 net, the notebook weights"
    parameters: int
    value: float  # Phi(1, -1)
    regions: int  # planar pieces in [-limit, limit]^2
    line: tuple[float, float]  # (a, b) of x2 = a*x1 + b
    limit: float
    compared: list[LinePieces]
    figures: Path | None  # the folder the figures were written to


def landscape_lesson(
    hidden: int = 3,
    weights: str = "seed",
    seed: int = 0,
    line: tuple[float, float] = (0.5, 0.3),
    compare: Sequence[int] = (1, 3, 8),
    limit: float = 2.0,
    figures: str | os.PathLike | None = None,
) -> LandscapeLesson:
    """Evaluate the 2->hidden->1 net at (1, -1), count its planar pieces on [-limit, limit]^2, count
    the pieces along x2 = a*x1 + b of random nets with `compare` hidden units (seeded with `seed`),
    and draw the figures into the folder `figures` (none when None)."""
    a, b = line
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"the line needs finite a and b, got {a}, {b}")
    if not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"limit must be a finite number > 0, got {limit}")
    net = cast(LandscapeNet, build_model("landscape-net", hidden=hidden, weights=weights, seed=seed))
    with torch.no_grad():
        value = float(net(torch.tensor([[1.0, -1.0]])))
    regions = activation_regions(net, limit)
    name = f"2->{hidden}->1 net, {'the notebook' if weights == 'seed' else f'random (seed {seed})'} weights"
    nets, compared = [], []
    for n in compare:
        other = cast(LandscapeNet, build_model("landscape-net", hidden=n, weights="random", seed=seed))
        kinks = kinks_on_line(other, a, b, -limit, limit)
        nets.append((n, other, kinks, len(kinks) + 1))
        compared.append(
            LinePieces(
                n, kinks, count_pieces(other, a, b), len(kinks) + 1, count_pieces_numeric(other, a, b, -limit, limit)
            )
        )
    folder = None
    if figures is not None:
        from torchlab.lessons.plots import (
            plot_landscape_contour,
            plot_landscape_surface,
            plot_line_pieces,
        )

        folder = Path(figures)
        plot_landscape_surface(net, limit, folder / "landscape_surface.png", title=f"Φ of the {name}")
        plot_landscape_contour(
            net, limit, folder / "landscape_contour.png", title=f"contours of the {name}", regions=regions
        )
        plot_line_pieces(nets, a, b, limit, folder / "landscape_pieces.png")
    return LandscapeLesson(name, count_parameters(net), value, regions, (a, b), limit, compared, folder)
