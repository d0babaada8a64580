"""Gradient descent and ascent on two functions of the plane, gradients by autograd.

    bowl      f(x, y) = 3(x - 1)^2 + y^2 + 4          minimum 4 at (1, 0), start (2.5, 1.5)
    mountain  B(x, y) = 4000 - 3(x - 10)^2 - (y - 3)^2  summit 4000 at (10, 3), start (0, 0)

One step is p <- p - eta * grad f(p) (descent) or p <- p + eta * grad B(p) (ascent). Both
functions curve by 6 along x and 2 along y, so each step multiplies the distance to the
optimum along x by (1 - 6 eta) and along y by (1 - 2 eta): the path converges for
eta < 2/6 = 1/3 and runs away for eta > 1/3.

`descent_lesson()` is what `torchlab descent` prints and draws: one path per learning rate on each.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

Surface = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bowl(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 3 * (x - 1) ** 2 + y**2 + 4


def mountain(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 4000 - 3 * (x - 10) ** 2 - (y - 3) ** 2


@dataclass(frozen=True)
class Problem:
    """A surface, where to start, which way to go and where the optimum is."""

    name: str
    fn: Surface
    start: tuple[float, float]
    optimum: tuple[float, float]
    ascent: bool
    curvatures: tuple[float, float]  # |second derivative| along x and y

    @property
    def largest_stable_eta(self) -> float:
        """Steps converge for eta below 2 / (largest curvature)."""
        return 2.0 / max(self.curvatures)


BOWL = Problem("bowl f(x,y) = 3(x-1)^2 + y^2 + 4", bowl, (2.5, 1.5), (1.0, 0.0), False, (6.0, 2.0))
MOUNTAIN = Problem("mountain B(x,y) = 4000 - 3(x-10)^2 - (y-3)^2", mountain, (0.0, 0.0), (10.0, 3.0), True, (6.0, 2.0))


def gradient(fn: Surface, point: torch.Tensor) -> torch.Tensor:
    """grad fn at point (2,), by autograd."""
    p = point.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(p[0], p[1]), p)
    return g


def gradient_path(
    problem: Problem, eta: float, steps: int, on_steps: Callable[[int], None] | None = None
) -> torch.Tensor:
    """The visited points (steps + 1, 2) in float64, starting at problem.start.

    on_steps(n) is called after every 1000 steps (and the last few) with how many were taken since.
    """
    sign = 1.0 if problem.ascent else -1.0
    point = torch.tensor(problem.start, dtype=torch.float64)
    path = [point]
    for step in range(1, steps + 1):
        point = point + sign * eta * gradient(problem.fn, point)
        path.append(point)
        if on_steps is not None and (step % 1000 == 0 or step == steps):
            on_steps(step % 1000 or 1000)
    return torch.stack(path)


def path_summary(problem: Problem, path: torch.Tensor) -> dict[str, float | str]:
    """Where the path ended, its distance to the optimum, and whether it converges."""
    optimum = torch.tensor(problem.optimum, dtype=path.dtype)
    first = float(torch.linalg.norm(path[0] - optimum))
    last = float(torch.linalg.norm(path[-1] - optimum))
    end = path[-1]
    value = float(problem.fn(end[0], end[1]))
    status = "diverges" if not last < first else ("converged" if last < 1e-3 * first else "converging")
    return {"end": f"({end[0]:.4g}, {end[1]:.4g})", "value": value, "distance": last, "status": status}


@dataclass(frozen=True)
class PathRun:
    """One learning rate's path on one problem, and where it ended."""

    problem: Problem
    eta: float
    path: torch.Tensor  # (steps + 1, 2), float64
    end: tuple[float, float]
    value: float  # the function at the end
    distance: float  # from the end to the optimum
    status: str  # "converged", "converging" or "diverges"


@dataclass(frozen=True)
class DescentLesson:
    """What `torchlab descent` prints: descent on BOWL and ascent on MOUNTAIN, one run per eta each."""

    steps: int
    descent: list[PathRun]
    ascent: list[PathRun]
    figures: Path | None  # the folder the figures were written to


def run_path(problem: Problem, eta: float, steps: int, on_steps: Callable[[int], None] | None = None) -> PathRun:
    """gradient_path and path_summary in one result."""
    path = gradient_path(problem, eta, steps, on_steps)
    s = path_summary(problem, path)
    end = path[-1].tolist()
    return PathRun(problem, eta, path, (end[0], end[1]), float(s["value"]), float(s["distance"]), str(s["status"]))


def descent_lesson(
    etas: Sequence[float] = (0.05, 0.1, 0.25, 0.35),
    steps: int = 20,
    figures: str | os.PathLike | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> DescentLesson:
    """Descend BOWL and ascend MOUNTAIN `steps` steps with each learning rate in `etas`, and draw the
    figures into the folder `figures` (none when None). on_steps: as for gradient_path."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    descent = [run_path(BOWL, eta, steps, on_steps) for eta in etas]
    ascent = [run_path(MOUNTAIN, eta, steps, on_steps) for eta in etas]
    folder = None
    if figures is not None:
        from torchlab.lessons.plots import plot_descent

        folder = Path(figures)
        with warnings.catch_warnings():  # a diverged path overflows to inf: matplotlib's log axis says so
            warnings.simplefilter("ignore", RuntimeWarning)
            plot_descent(BOWL, {r.eta: r.path for r in descent}, folder / "descent_bowl.png")
            plot_descent(MOUNTAIN, {r.eta: r.path for r in ascent}, folder / "ascent_mountain.png")
    return DescentLesson(steps, descent, ascent, folder)
