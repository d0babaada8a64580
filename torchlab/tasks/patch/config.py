"""`torchlab train patch`: brightness = w0 + w1*x + w2*y on a 32x32 gray patch (`patch-linear`, the old name).

The data is a crop of a photo (default: matplotlib's grace_hopper.jpg, a shaded part of
the forehead) or, with --ramp, the seed's synthetic ramp 80 + 1.2x + 0.8y + N(0, 2^2).
Two ways to train the same three weights:
  --mode manual    the seed's loop with tensors: err = X w - I, grad = (2/N) X^T err, w -= lr grad
  --mode autograd  LinearPatchRegressor + MSELoss + torch.optim.SGD through the Trainer
Both take exactly the same steps. The answer is checked against least squares
(torch.linalg.lstsq), with every weight vector shown in gray levels and pixels.
Recipes: default = --scale (x, y, brightness mapped to [0, 1]), lr 0.5, 300 epochs;
seed = the seed's raw pixels, lr 1e-4, 800 epochs (which stops far from least squares).
"""

from __future__ import annotations

from dataclasses import dataclass

from torchlab.config import TrainConfig, config_field, finite, flag_name, number
from torchlab.data.facts import DEFAULT_COL, DEFAULT_ROW, DEFAULT_SIZE
from torchlab.errors import UsageError
from torchlab.tasks import Task, register_task


@dataclass(frozen=True)
class PatchConfig(TrainConfig):
    """Every choice of a patch run (the shared training fields come from TrainConfig)."""

    model: str = config_field("patch-linear", "which model", choices=("patch-linear",), group="model")
    mode: str = config_field(
        "autograd",
        "manual: the seed's hand-written gradient loop; autograd: module + torch.optim + Trainer",
        choices=("manual", "autograd"),
        group="model",
    )
    scale: bool = config_field(True, "map x, y and brightness to [0, 1] before training", group="data")
    image: str | None = config_field(None, "any photo (none: matplotlib's grace_hopper.jpg)", group="data")
    row: int = config_field(DEFAULT_ROW, "top row of the crop", group="data")
    col: int = config_field(DEFAULT_COL, "left column of the crop", group="data")
    size: int = config_field(DEFAULT_SIZE, "side of the square patch", group="data")
    ramp: bool = config_field(
        False, "fit a synthetic ramp intercept + slope_x*x + slope_y*y + noise instead of a photo", group="data"
    )
    intercept: float = config_field(80.0, "ramp brightness at x = y = 0", check=finite(), group="data")
    slope_x: float = config_field(1.2, "ramp gray levels per column", check=finite(), group="data")
    slope_y: float = config_field(0.8, "ramp gray levels per row", check=finite(), group="data")
    noise: float = config_field(2.0, "ramp noise standard deviation", check=number(0), group="data")

    def validate(self) -> None:
        super().validate()
        if self.ramp and self.image:
            raise UsageError("--ramp and --image exclude each other; drop one")
        if self.mode == "manual":
            for name, plain in (("batch_size", None), ("weight_decay", 0.0), ("patience", None)):
                if getattr(self, name) != plain:
                    raise UsageError(
                        f"{flag_name(name)} needs --mode autograd; "
                        "the manual loop is the seed's plain full-batch descent"
                    )


RECIPES = {
    "default": PatchConfig(epochs=300, lr=0.5, batch_size=None, optimizer="sgd", scale=True),
    "seed": PatchConfig(epochs=800, lr=1e-4, batch_size=None, optimizer="sgd", scale=False),
}

TASK = register_task(
    Task(
        name="patch",
        help="a gray patch's brightness as w0 + w1*x + w2*y: the linear patch-linear regressor on a 32x32 "
        "patch (photo or ramp)",
        config_class=PatchConfig,
        recipes=RECIPES,
        description=__doc__ or "",
        models=("patch-linear",),
        package=__package__,
    )
)
