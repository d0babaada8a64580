"""The first notebook's explorations, which train nothing; each returns plain values.

    ring.py       ring_lesson(): the hand-set ring net's scores, misclassified area, best diamond
    landscape.py  landscape_lesson(): a 2->n->1 ReLU net's value, kinks and linear pieces
    descent.py    descent_lesson(): gradient descent and ascent paths for several learning rates
    plots.py      their figures (written when a lesson is given a `figures` folder)

`torchlab ring`, `torchlab landscape` and `torchlab descent` print these results.

    from torchlab.lessons import ring_lesson
    ring_lesson(1.0, 2.0).misclassified_area   # 5*pi - 10
"""

from torchlab.lessons.descent import DescentLesson, PathRun, descent_lesson
from torchlab.lessons.landscape import LandscapeLesson, LinePieces, landscape_lesson
from torchlab.lessons.ring import RingLesson, ScoredPoint, ring_lesson

__all__ = [
    "DescentLesson",
    "LandscapeLesson",
    "LinePieces",
    "PathRun",
    "RingLesson",
    "ScoredPoint",
    "descent_lesson",
    "landscape_lesson",
    "ring_lesson",
]
