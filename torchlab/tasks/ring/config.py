"""`torchlab train ring`: a 2->16->1 ReLU net (`ring-mlp`, the old name) learns "inside the ring or not".

The trained counterpart of the hand-set ring net (`torchlab ring`): binary cross-entropy
on one logit, weight decay, full-batch steps through the Trainer. Two data sets:
  ring     points uniform in [-2.5, 2.5]^2, labeled by the circular ring 1 <= |x| <= 2
  circles  the assignment's two circles: radius 1.1 (label 1) and radius 3 (label 0)
70% of the points train, 30% test. The summary puts the trained net's test accuracy next
to the hand-set L1-ring net's accuracy on the same test points.
Recipes: default = AdamW lr 0.02, 1000 full-batch steps; seed = the assignment's plain
SGD, lr 0.1, weight decay 1e-4, 5000 full-batch steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchlab.config import TrainConfig, config_field, number, whole
from torchlab.data.facts import check_radii
from torchlab.tasks import Task, register_task

HELP = "points inside a ring or not: the 2->16->1 ReLU ring-mlp, BCE + weight decay (ring or two-circles data)"


@dataclass(frozen=True)
class RingConfig(TrainConfig):
    """Every choice of a ring run (the shared training fields come from TrainConfig)."""

    model: str = config_field("ring-mlp", "which model", choices=("ring-mlp",), group="model")
    dataset: str = config_field(
        "ring",
        "ring: uniform points labeled by the circular ring; circles: the assignment's two circles of radius 1.1 and 3",
        choices=("ring", "circles"),
        group="data",
    )
    points: int | None = config_field(
        None,
        "ring: points in the box (none: 2000); circles: points per circle (none: 100)",
        check=whole(1),
        group="data",
    )
    a: float = config_field(1.0, "inner radius of the ring", group="data")
    b: float = config_field(2.0, "outer radius of the ring", group="data")
    box: float = config_field(2.5, "ring points lie in [-box, box]^2", check=number(0, low_open=True), group="data")
    train_fraction: float = config_field(
        0.7, "share of the points to train on", check=number(0, 1, low_open=True), group="data"
    )
    hidden: int = config_field(16, "hidden units", check=whole(1), group="model")

    def validate(self) -> None:
        super().validate()
        check_radii(self.a, self.b)


RECIPES = {
    "default": RingConfig(epochs=1000, lr=0.02, batch_size=None, weight_decay=1e-4, optimizer="adamw"),
    "seed": RingConfig(epochs=5000, lr=0.1, batch_size=None, weight_decay=1e-4, optimizer="sgd"),
}

TASK = register_task(
    Task(
        name="ring",
        help=HELP,
        config_class=RingConfig,
        recipes=RECIPES,
        description=__doc__ or "",
        models=("ring-mlp",),
        package=__package__,
    )
)
