"""`keypoints`: 15 facial keypoints from 96x96 gray faces, by `--model` keypoint-net (the default),
keypoint-cnn or keypoint-fcn.

    import torchlab
    result = torchlab.train("keypoints", epochs=5)          # or: torchlab train keypoints --epochs 5
    torchlab train keypoints --model keypoint-cnn --recipe seed   # the practical's CNN, as it was

Each model has its own recipes (below); `--recipe` picks one of the chosen model's. The old task
names keypoint-net, keypoint-cnn and keypoint-fcn stay: `train keypoint-cnn` is `train keypoints
--model keypoint-cnn`.

Data: a Kaggle-format training.csv (`--data`) or, offline, synthetic faces in the same format.
Validation is always the seed's: 10% of the rows that have all 15 keypoints, split with
random_state=42, so every model and every `--missing` value is measured on the same faces.

Loss: mean squared error in pixels over the labeled coordinates only (a 0/1 mask), so rows
with missing keypoints still teach the ones they have (`--missing mask`, the default). The
metric is the RMSE in pixels, overall and per keypoint, next to the mean-keypoint baseline.

Recipes:
  seed     the practical: Adam 1e-3, batch 64, 20 epochs, complete rows only, no augmentation.
  default  keypoint-fcn/cnn: the same models with every row (masked), augmentation and a cosine LR;
           keypoint-net: AdamW with a one-cycle LR for 100 epochs, every row, augmentation
           (3,452 real faces: 1.11 px validation RMSE after 76 minutes of training on a 2-core CPU).
  cpu      keypoint-net only, and its recipe on a CPU unless --recipe says otherwise: the default
           recipe in 18 epochs without flips (1.24 px after 13 minutes on a 2-core CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchlab.config import TrainConfig, config_field, finite, flag_name, number, whole
from torchlab.data.facts import FLIP_SUM, HEADS
from torchlab.errors import UsageError
from torchlab.tasks import Task, register_task

DEFAULT_SYNTHETIC = 2000  # synthetic faces when no training.csv is given
MODELS = ("keypoint-net", "keypoint-cnn", "keypoint-fcn")
NET_DEFAULTS: dict[str, Any] = {"width": 32, "flip_average": False, "head": "heatmap-24"}  # keypoint-net's fields
NET_FIELDS = tuple(NET_DEFAULTS)  # unset (none) with the other models; with keypoint-net, none means NET_DEFAULTS


@dataclass(frozen=True)
class KeypointConfig(TrainConfig):
    """Every choice of a keypoints run (the shared training fields come from TrainConfig).

    width, flip_average and head belong to keypoint-net: its recipes set them, and they stay none
    with keypoint-cnn or keypoint-fcn (a value there is a UsageError naming the field and the model).
    """

    model: str = config_field(
        "keypoint-net",
        "which network: torchlab's keypoint-net, or the practical's keypoint-cnn "
        "or keypoint-fcn (each has its own recipes)",
        choices=MODELS,
        group="model",
    )
    data: str | None = config_field(
        None, "Kaggle-format training.csv (none: synthetic faces, generated offline)", group="data"
    )
    synthetic: int = config_field(
        DEFAULT_SYNTHETIC, "number of synthetic faces when --data is not given", check=whole(20), group="data"
    )
    missing: str = config_field(
        "mask",
        "rows with missing keypoints: drop them (the seed) or mask the missing coordinates out of the loss",
        choices=("drop", "mask"),
        group="data",
    )
    augment: bool = config_field(True, "random flips, rotations, scales and shifts of the training faces", group="data")
    flip: float = config_field(
        0.5,
        "probability that augmentation mirrors a training face (keypoints flipped and left/right swapped; 0: never)",
        check=number(0, 1),
        group="data",
    )
    flip_sum: float | None = config_field(
        None,
        "the horizontal flip maps x to FLIP_SUM - x (none: for a CSV, measured "
        "on its training faces by the net after 3 epochs without flips; 95 for "
        "synthetic faces or when it cannot be measured)",
        check=finite(),
        group="data",
    )
    degrees: float = config_field(
        12.0,
        "augmentation: largest rotation of a training face, in degrees (0: none)",
        check=number(0, 180),
        group="data",
    )
    scale: float = config_field(
        0.08,
        "augmentation: faces are scaled by a factor drawn from [1 - scale, 1 + scale] (0: none)",
        check=number(0, 0.9),
        group="data",
    )
    shift: float = config_field(
        5.0,
        "augmentation: largest shift of a training face along each axis, in pixels (0: none)",
        check=number(0, 48),
        group="data",
    )
    brightness: float = config_field(
        0.15,
        "augmentation: largest brightness change, a fraction of full white (0: none)",
        check=number(0, 1),
        group="data",
    )
    contrast: float = config_field(
        0.25,
        "augmentation: contrast is multiplied by a factor drawn from [1 - contrast, 1 + contrast] (0: none)",
        check=number(0, 1),
        group="data",
    )
    mean_init: bool = config_field(True, "start the output at the training set's mean keypoints", group="model")

    width: int | None = config_field(None, "keypoint-net: channels of the first stage", check=whole(4), group="model")
    flip_average: bool | None = config_field(
        None,
        "keypoint-net: predict from the face and its mirror image and "
        "average (keypoints flipped back): test-time augmentation, two passes "
        "per face",
        group="model",
    )
    head: str | None = config_field(
        None,
        "keypoint-net: read-out, heat maps on a 24x24 or 48x48 grid with a "
        "soft-argmax, or direct regression from the encoder",
        choices=HEADS,
        group="model",
    )

    def validate(self) -> None:
        super().validate()
        if self.model != "keypoint-net":
            for name in NET_FIELDS:
                if getattr(self, name) is not None:
                    raise UsageError(
                        f"{flag_name(name)} is a field of keypoint-net, not of --model {self.model}; "
                        f"drop {flag_name(name)} or train --model keypoint-net"
                    )

    def mirror_sum(self) -> float:
        """What a horizontal flip maps x to, minus x: flip_sum, or the geometric 95 (a run on a CSV measures
        its faces' mirror and sets flip_sum to it: tasks/keypoints/train.py find_mirror)."""
        return FLIP_SUM if self.flip_sum is None else self.flip_sum

    def model_kwargs(self, mean: list[float]) -> dict[str, Any]:
        """Constructor arguments of the model (plain data, kept in the checkpoint); `mean`: mean keypoints.

        keypoint-cnn and keypoint-fcn take none; keypoint-net its fields (NET_DEFAULTS where unset).
        """
        if self.model != "keypoint-net":
            return {}
        net = {name: NET_DEFAULTS[name] if getattr(self, name) is None else getattr(self, name) for name in NET_FIELDS}
        return {"mean_keypoints": mean if self.mean_init else None, "flip_sum": self.mirror_sum(), **net}


# default (fcn, cnn): every row (masked), augmentation, cosine LR; seed: the practical, nothing added
DEFAULT: dict[str, Any] = {
    "epochs": 30,
    "lr": 1e-3,
    "batch_size": 64,
    "weight_decay": 0.0,
    "optimizer": "adam",
    "schedule": "cosine",
}


NET_DEFAULT: dict[str, Any] = {
    "epochs": 100,
    "lr": 2e-3,
    "batch_size": 64,
    "weight_decay": 1e-4,
    "optimizer": "adamw",
    "schedule": "onecycle",
    "warmup": 0.2,
}
NET: dict[str, Any] = {"model": "keypoint-net", **NET_DEFAULTS}  # keypoint-net's recipes set its fields


SEED: dict[str, Any] = {
    "epochs": 20,
    "lr": 1e-3,
    "batch_size": 64,
    "weight_decay": 0.0,
    "optimizer": "adam",
    "schedule": "none",
    "missing": "drop",
    "augment": False,
    "mean_init": False,
}


# The recipes of each model: "default" differs per model, and only keypoint-net has "cpu".
RECIPES: dict[str, dict[str, TrainConfig]] = {
    "keypoint-net": {
        "default": KeypointConfig(**NET_DEFAULT, **NET),
        "seed": KeypointConfig(**SEED, **NET),
        "cpu": KeypointConfig(**dict(NET_DEFAULT, epochs=18, flip=0.0), **NET),
    },
    "keypoint-cnn": {
        "default": KeypointConfig(**DEFAULT, model="keypoint-cnn"),
        "seed": KeypointConfig(**SEED, model="keypoint-cnn"),
    },
    "keypoint-fcn": {
        "default": KeypointConfig(**DEFAULT, model="keypoint-fcn"),
        "seed": KeypointConfig(**SEED, model="keypoint-fcn"),
    },
}

TASK = register_task(
    Task(
        name="keypoints",
        help="15 facial keypoints from 96x96 gray faces: keypoint-net (torchlab's: residual, heat maps "
        "+ soft-argmax, augmentation), or the practical's keypoint-cnn and keypoint-fcn",
        config_class=KeypointConfig,
        recipes=RECIPES["keypoint-net"],
        model_recipes=RECIPES,
        description=__doc__ or "",
        models=MODELS,
        cpu_recipe="cpu",
        package=__package__,
        tune_metric=("val_rmse", "min"),
        search_space={"lr": "1e-4:1e-2:log", "weight_decay": "1e-6:0.1:log"},  # torchlab tune
    )
)
