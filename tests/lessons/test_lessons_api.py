"""The lessons called from Python: ring_lesson, landscape_lesson and descent_lesson return values, not text."""

from __future__ import annotations

import math

import pytest

from torchlab.errors import DataError
from torchlab.lessons import descent_lesson, landscape_lesson, ring_lesson


def test_ring_lesson_values():
    lesson = ring_lesson(1.0, 2.0)
    assert lesson.misclassified_area == pytest.approx(5 * math.pi - 10)
    assert lesson.circular_ring_area == pytest.approx(3 * math.pi)
    assert lesson.best_a == pytest.approx(math.sqrt(8 / 5), abs=1e-4)
    assert lesson.best_b == pytest.approx(2 * math.sqrt(8 / 5), abs=1e-4)
    assert lesson.best_misclassified_area == pytest.approx(2.8379, abs=1e-3)
    assert lesson.grid_misclassified_area == pytest.approx(5 * math.pi - 10, rel=0.01)  # the net, measured
    assert lesson.box == pytest.approx(2.5 * math.sqrt(1.6))  # widened from 2.5 to show the best diamond
    assert lesson.parameters == 31 and lesson.figures is None
    assert lesson.layer2_weight == [[-2] * 4, [-1] * 4, [1] * 4] and lesson.layer2_bias == [3, 2, -2]
    assert [p.in_ring for p in lesson.points] == [False, True, True, True, True, True, False]
    assert [p.score for p in lesson.points] == pytest.approx([-1.0, 0.0, 0.1, 0.0, 0.3, 0.0, -0.1], abs=1e-6)
    assert lesson.matches_notebook is True and lesson.agrees_with_l1_ring is True

    other = ring_lesson(0.5, 1.5, points=[(1.0, 0.4), (-1.5, 0.1)])
    assert [(p.x1, p.x2, p.in_ring) for p in other.points] == [(1.0, 0.4, True), (-1.5, 0.1, False)]
    assert other.points[1].l1 == pytest.approx(1.6) and other.points[1].score == pytest.approx(-0.1)
    assert other.matches_notebook is None  # the notebook's answers are for its own points and radii
    with pytest.raises(DataError, match="0 <= a < b"):
        ring_lesson(2.0, 1.0)
    with pytest.raises(ValueError, match="box"):
        ring_lesson(box=math.nan)


def test_landscape_lesson_values():
    lesson = landscape_lesson()
    assert lesson.value == -4.0  # Phi(1, -1) with the notebook's weights
    assert lesson.regions == 7 and lesson.parameters == 13 and lesson.figures is None
    assert lesson.name == "2->3->1 net, the notebook weights" and lesson.line == (0.5, 0.3)
    assert [(c.hidden, c.pieces, c.pieces_in_view, c.measured_in_view) for c in lesson.compared] == [
        (1, 2, 2, 2),
        (3, 4, 4, 4),
        (8, 9, 9, 9),
    ]
    assert all(len(c.kinks) == c.pieces_in_view - 1 and all(-2 < k < 2 for k in c.kinks) for c in lesson.compared)
    random = landscape_lesson(hidden=5, weights="random", seed=1, compare=[2], limit=1.0)
    assert random.name == "2->5->1 net, random (seed 1) weights" and random.parameters == 21
    assert random.compared[0].pieces == 3 and 1 <= random.compared[0].pieces_in_view <= 3
    with pytest.raises(ValueError, match="hidden=3"):
        landscape_lesson(hidden=5)
    with pytest.raises(ValueError, match="limit"):
        landscape_lesson(limit=0.0)


def test_descent_lesson_values():
    counted: list[int] = []
    lesson = descent_lesson((0.1, 0.35), steps=20, on_steps=counted.append)
    assert sum(counted) == 2 * 2 * 20 and lesson.steps == 20 and lesson.figures is None
    bowl, runaway = lesson.descent
    assert bowl.eta == 0.1 and bowl.path.shape == (21, 2)
    assert bowl.end == pytest.approx((1 + 1.5 * 0.4**20, 1.5 * 0.8**20))  # (1 - 6 eta)^k and (1 - 2 eta)^k
    assert bowl.value == pytest.approx(4 + 3 * (1.5 * 0.4**20) ** 2 + (1.5 * 0.8**20) ** 2)
    assert bowl.distance == pytest.approx(math.hypot(1.5 * 0.4**20, 1.5 * 0.8**20))
    assert (bowl.status, runaway.status) == ("converging", "diverges")
    summit = lesson.ascent[0]
    assert summit.problem.ascent and summit.end == pytest.approx((10 - 10 * 0.4**20, 3 - 3 * 0.8**20))
    assert [r.status for r in lesson.ascent] == ["converging", "diverges"]
    with pytest.raises(ValueError, match="steps"):
        descent_lesson(steps=0)
