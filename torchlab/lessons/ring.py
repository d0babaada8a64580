"""The hand-set ring net's lesson (`torchlab ring`): score points, measure what it gets wrong.

from torchlab.lessons import ring_lesson
lesson = ring_lesson(1.0, 2.0)
lesson.misclassified_area      # 5*pi - 10: the L1 ring standing in for the circular ring
lesson.best_a, lesson.best_b   # sqrt(8/5) * (1, 2): the L1 ring that gets the least wrong
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch

from torchlab.data.facts import check_radii
from torchlab.data.ring import (
    SEED_ANSWERS,
    SEED_TEST_POINTS,
    best_diamond,
    circular_ring_area,
    in_circular_ring,
    misclassified_area,
)
from torchlab.models import build_model, count_parameters
from torchlab.models.ring import RingNet


@dataclass(frozen=True)
class ScoredPoint:
    """One point, the net's score for it and the L1 norm that decides it."""

    x1: float
    x2: float
    score: float
    in_ring: bool  # score >= 0
    l1: float  # |x1| + |x2|


@dataclass(frozen=True)
class RingLesson:
    """What `torchlab ring` prints: the net, its scores, the exact and measured areas, the best diamond."""

    a: float
    b: float
    parameters: int
    layer2_weight: list[list[float]]
    layer2_bias: list[float]
    points: list[ScoredPoint]
    agrees_with_l1_ring: bool  # every point's answer is a <= |x1|+|x2| <= b
    matches_notebook: bool | None  # the notebook's answers for its seven points (None: other points or radii)
    circular_ring_area: float
    misclassified_area: float  # exact, for the L1 ring (a, b) against the circular ring (a, b)
    grid_misclassified_area: float  # the same area, measured with the net on a grid
    best_a: float
    best_b: float
    best_misclassified_area: float
    box: float  # the view [-box, box]^2 of the grid and the figures, widened to show the best diamond
    figures: Path | None  # the folder the figures were written to


def grid_disagreement(net: torch.nn.Module, a: float, b: float, box: float, resolution: int = 1000) -> float:
    """Area where the net's answer differs from the circular ring, measured on a grid over [-box, box]^2."""
    axis = torch.linspace(-box, box, resolution, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        differ = net(grid.float()).ge(0) != in_circular_ring(grid, a, b)
    return float(differ.double().mean()) * (2 * box) ** 2


def ring_lesson(
    a: float = 1.0,
    b: float = 2.0,
    points: Sequence[tuple[float, float]] | None = None,
    box: float = 2.5,
    figures: str | os.PathLike | None = None,
) -> RingLesson:
    """Score `points` (default: the notebook's seven) with the ring net for (a, b), measure its
    misclassified area exactly and on a grid, find the best diamond, and draw the figures into
    the folder `figures` (none when None)."""
    check_radii(a, b)
    if not (math.isfinite(box) and box > 0):
        raise ValueError(f"box must be a finite number > 0, got {box}")
    seed_points = points is None
    points = list(SEED_TEST_POINTS if points is None else points)
    net = cast(RingNet, build_model("ring-net", a=a, b=b))
    x = torch.tensor(points, dtype=torch.float32)
    with torch.no_grad():
        scores = net.score(x).tolist()
    scored = [ScoredPoint(x1, x2, score, score >= 0, abs(x1) + abs(x2)) for (x1, x2), score in zip(points, scores)]
    wrong = float(misclassified_area(a, b, a, b))
    box = max(box, 1.25 * b * math.sqrt(1.6))
    a2, b2, best = best_diamond(a, b)
    folder = None
    if figures is not None:
        from torchlab.lessons.plots import plot_ring_misclassified, plot_ring_regions

        folder = Path(figures)
        plot_ring_regions(net, a, b, box, x, folder / "ring_regions.png")
        plot_ring_misclassified(
            a, b, [(a, b, wrong, "same radii:"), (a2, b2, best, "best")], box, folder / "ring_misclassified.png"
        )
    return RingLesson(
        a=a,
        b=b,
        parameters=count_parameters(net),
        layer2_weight=net.layer2.weight.tolist(),
        layer2_bias=net.layer2.bias.tolist(),
        points=scored,
        agrees_with_l1_ring=all(p.in_ring == (a <= p.l1 <= b) for p in scored),
        matches_notebook=[p.in_ring for p in scored] == SEED_ANSWERS if seed_points and (a, b) == (1.0, 2.0) else None,
        circular_ring_area=circular_ring_area(a, b),
        misclassified_area=wrong,
        grid_misclassified_area=grid_disagreement(net, a, b, box),
        best_a=a2,
        best_b=b2,
        best_misclassified_area=best,
        box=box,
        figures=folder,
    )
