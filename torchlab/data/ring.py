"""Ring-shaped regions in the plane: membership, exact areas, and point sets to learn them from.

The circular ring {a <= sqrt(x1^2 + x2^2) <= b} is what we want; the L1 ring (a diamond
annulus) {a <= |x1| + |x2| <= b} is what a small hand-set ReLU net computes exactly. The
areas here are exact formulas, so the misclassified area of "diamond instead of circle"
and the best diamond can be found without sampling.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from torchlab.data.facts import check_radii
from torchlab.errors import DataError

# The notebook's seven test points for a = 1, b = 2 and the answers it prints for them.
SEED_TEST_POINTS = [(0.0, 0.0), (0.5, 0.5), (1.1, 0.0), (1.0, 1.0), (1.5, 0.2), (2.0, 0.0), (2.1, 0.0)]
SEED_ANSWERS = [False, True, True, True, True, True, False]


def in_circular_ring(points: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Boolean (N,): a <= |x|_2 <= b for points (N, 2)."""
    r2 = (points**2).sum(dim=-1)
    return (r2 >= a * a) & (r2 <= b * b)


def in_l1_ring(points: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Boolean (N,): a <= |x1| + |x2| <= b for points (N, 2)."""
    r = points.abs().sum(dim=-1)
    return (r >= a) & (r <= b)


# ------------------------------------------------------------------ exact areas


def disk_diamond_overlap(radius: float | np.ndarray, half_diagonal: float | np.ndarray) -> np.ndarray:
    """Area of {x1^2 + x2^2 <= R^2} intersected with {|x1| + |x2| <= s} (vectorized over R and s).

    s <= R: the diamond lies inside the disk (area 2 s^2); s >= R*sqrt(2): the disk lies
    inside the diamond (pi R^2); in between, the disk minus four circular segments cut off
    by the diamond's edges, which lie at distance s / sqrt(2) from the center.
    """
    r = np.asarray(radius, dtype=float)
    s = np.asarray(half_diagonal, dtype=float)
    d = s / math.sqrt(2.0)
    ratio = np.clip(np.divide(d, r, out=np.ones_like(d * r), where=r > 0), 0.0, 1.0)
    segment = r**2 * (np.arccos(ratio) - ratio * np.sqrt(1.0 - ratio**2))
    between = math.pi * r**2 - 4.0 * segment
    return np.where(s <= r, 2.0 * s**2, np.where(d >= r, math.pi * r**2, between))


def circular_ring_area(a: float, b: float) -> float:
    return math.pi * (b * b - a * a)


def l1_ring_area(a: float, b: float) -> float:
    return 2.0 * (b * b - a * a)


def misclassified_area(a: float, b: float, a2: float | np.ndarray, b2: float | np.ndarray) -> np.ndarray:
    """Area of the points on which the L1 ring (a2, b2) and the circular ring (a, b) disagree.

    |C xor D| = |C| + |D| - 2|C and D|, and since C = disk_b minus disk_a and D = diamond_b2
    minus diamond_a2, |C and D| = |B B'| - |A B'| - |B A'| + |A A'| (inclusion-exclusion).
    """
    a2, b2 = np.asarray(a2, dtype=float), np.asarray(b2, dtype=float)
    overlap = (
        disk_diamond_overlap(b, b2)
        - disk_diamond_overlap(a, b2)
        - disk_diamond_overlap(b, a2)
        + disk_diamond_overlap(a, a2)
    )
    return circular_ring_area(a, b) + 2.0 * (b2**2 - a2**2) - 2.0 * overlap


def best_diamond(a: float, b: float, rounds: int = 6, steps: int = 101) -> tuple[float, float, float]:
    """The L1 ring (a2, b2) with the smallest misclassified area against the circular ring (a, b).

    A grid search over 0 <= a2 <= b2 that zooms in around the best point each round.
    Returns (a2, b2, area). For a single disk the optimum is s = sqrt(8/5) R: the diamond's
    edges then lie half inside and half outside the circle.
    """
    check_radii(a, b)
    lo_a, hi_a, lo_b, hi_b = 0.0, 2.0 * b, 0.0, 3.0 * b
    best = (a, b, float(misclassified_area(a, b, a, b)))
    for _ in range(rounds):
        ga, gb = np.meshgrid(np.linspace(lo_a, hi_a, steps), np.linspace(lo_b, hi_b, steps), indexing="ij")
        area = np.where(ga <= gb, misclassified_area(a, b, ga, gb), np.inf)
        i, j = np.unravel_index(np.argmin(area), area.shape)
        if area[i, j] <= best[2]:
            best = (float(ga[i, j]), float(gb[i, j]), float(area[i, j]))
        step_a, step_b = (hi_a - lo_a) / (steps - 1), (hi_b - lo_b) / (steps - 1)
        lo_a, hi_a = max(0.0, best[0] - 2 * step_a), best[0] + 2 * step_a
        lo_b, hi_b = max(0.0, best[1] - 2 * step_b), best[1] + 2 * step_b
    return best


# ------------------------------------------------------------------ point sets


def sample_ring_points(
    n: int, a: float = 1.0, b: float = 2.0, box: float = 2.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """n points uniform in [-box, box]^2, labeled 1.0 inside the circular ring (a, b), else 0.0."""
    check_radii(a, b)
    if n < 2:
        raise DataError(f"need at least 2 points, got {n}")
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 2, generator=g) * 2.0 - 1.0) * box
    return x, in_circular_ring(x, a, b).float()


def two_circles(n: int = 100, inner: float = 1.1, outer: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The assignment's two circles: n points at radius `inner` (label 1) and n at `outer` (label 0).

    The angles are evenly spaced; unlike the assignment's version, the point at angle 2*pi
    is not a second copy of the point at angle 0.
    """
    if n < 1:
        raise DataError(f"need at least 1 point per circle, got {n}")
    phi = torch.arange(n, dtype=torch.float32) * (2.0 * math.pi / n)
    unit = torch.stack([torch.sin(phi), torch.cos(phi)], dim=1)
    x = torch.cat([inner * unit, outer * unit])
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    return x, y


def split(
    x: torch.Tensor, y: torch.Tensor, train_fraction: float = 0.7, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (x_train, y_train, x_test, y_test) with `train_fraction` of the points for training."""
    if not 0.0 < train_fraction < 1.0:
        raise DataError(f"the training share must be in (0, 1), got {train_fraction}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    k = int(len(x) * train_fraction)
    return x[order[:k]], y[order[:k]], x[order[k:]], y[order[k:]]
