"""`keypoint-fcn`, `keypoint-cnn`, `keypoint-net`: 15 facial keypoints from 96x96 gray faces.

    import torchlab
    result = torchlab.train("keypoint-net", epochs=5)       # or: torchlab train keypoint-net --epochs 5

Data: a Kaggle-format training.csv (`--data`) or, offline, synthetic faces in the same format.
Validation is always the seed's: 10% of the rows that have all 15 keypoints, split with
random_state=42, so every model and every `--missing` setting is measured on the same faces.

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

from torchlab.config import TrainConfig, config_field, finite, number, whole
from torchlab.data.facts import FLIP_SUM, HEADS
from torchlab.tasks import Task, register_task

DEFAULT_SYNTHETIC = 2000  # synthetic faces when no training.csv is given


@dataclass(frozen=True)
class KeypointConfig(TrainConfig):
    """Every choice of a keypoint-fcn or keypoint-cnn run (the shared training fields come from TrainConfig)."""

    data: str | None = config_field(None, "Kaggle-format training.csv (none: synthetic faces, generated offline)",
                                    group="data")
    synthetic: int = config_field(DEFAULT_SYNTHETIC, "number of synthetic faces when --data is not given", check=whole(20),
                                  group="data")
    missing: str = config_field("mask", "rows with missing keypoints: drop them (the seed) or mask the missing "
                                "coordinates out of the loss", choices=("drop", "mask"), group="data")
    augment: bool = config_field(True, "random flips, rotations, scales and shifts of the training faces", group="data")
    flip: float = config_field(0.5, "probability that augmentation mirrors a training face (keypoints flipped "
                               "and left/right swapped; 0: never)", check=number(0, 1), group="data")
    flip_sum: float | None = config_field(None, "the horizontal flip maps x to FLIP_SUM - x (none: for a CSV, measured "
                                          "on its training faces by the net after 3 epochs without flips; 95 for "
                                          "synthetic faces or when it cannot be measured)", check=finite(),
                                          group="data")
    degrees: float = config_field(12.0, "augmentation: largest rotation of a training face, in degrees (0: none)",
                                  check=number(0, 180), group="data")
    scale: float = config_field(0.08, "augmentation: faces are scaled by a factor drawn from [1 - scale, 1 + scale] "
                                "(0: none)", check=number(0, 0.9), group="data")
    shift: float = config_field(5.0, "augmentation: largest shift of a training face along each axis, in pixels "
                                "(0: none)", check=number(0, 48), group="data")
    brightness: float = config_field(0.15, "augmentation: largest brightness change, a fraction of full white "
                                     "(0: none)", check=number(0, 1), group="data")
    contrast: float = config_field(0.25, "augmentation: contrast is multiplied by a factor drawn from "
                                   "[1 - contrast, 1 + contrast] (0: none)", check=number(0, 1), group="data")
    mean_init: bool = config_field(True, "start the output at the training set's mean keypoints", group="model")

    def mirror_sum(self) -> float:
        """What a horizontal flip maps x to, minus x: flip_sum, or the geometric 95 (a run on a CSV measures
        its faces' mirror and sets flip_sum to it: tasks/keypoints/train.py find_mirror)."""
        return FLIP_SUM if self.flip_sum is None else self.flip_sum

    def model_kwargs(self, mean: list[float]) -> dict[str, Any]:
        """Constructor arguments of the model (plain data, kept in the checkpoint); `mean`: mean keypoints."""
        return {}


@dataclass(frozen=True)
class KeypointNetConfig(KeypointConfig):
    """Every choice of a keypoint-net run: the keypoint fields plus the network's width."""

    width: int = config_field(32, "channels of the first stage", check=whole(4), group="model")
    flip_average: bool = config_field(False, "predict from the face and its mirror image and average (keypoints "
                                      "flipped back): test-time augmentation, two passes per face", group="model")

    head: str = config_field("heatmap-24", "read-out: heat maps on a 24x24 or 48x48 grid with a soft-argmax, or "
                             "direct regression from the encoder", choices=HEADS, group="model")

    def model_kwargs(self, mean: list[float]) -> dict[str, Any]:
        return {"width": self.width, "mean_keypoints": mean if self.mean_init else None,
                "flip_average": self.flip_average, "flip_sum": self.mirror_sum(), "head": self.head}


# default (fcn, cnn): every row (masked), augmentation, cosine LR; seed: the practical, nothing added
DEFAULT = {"epochs": 30, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "optimizer": "adam", "schedule": "cosine"}


NET_DEFAULT = {"epochs": 100, "lr": 2e-3, "batch_size": 64, "weight_decay": 1e-4, "optimizer": "adamw",
               "schedule": "onecycle", "warmup": 0.2}


SEED = {"epochs": 20, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "optimizer": "adam", "schedule": "none",
        "missing": "drop", "augment": False, "mean_init": False}


RECIPES: dict[str, dict[str, KeypointConfig]] = {
    "keypoint-fcn": {"default": KeypointConfig(**DEFAULT), "seed": KeypointConfig(**SEED)},
    "keypoint-cnn": {"default": KeypointConfig(**DEFAULT), "seed": KeypointConfig(**SEED)},
    "keypoint-net": {"default": KeypointNetConfig(**NET_DEFAULT), "seed": KeypointNetConfig(**SEED),
                     "cpu": KeypointNetConfig(**dict(NET_DEFAULT, epochs=18, flip=0.0))},
}


HELP = {
    "keypoint-fcn": "the practical's fully connected keypoint net (9216->1024->512->30) on Kaggle-format faces",
    "keypoint-cnn": "the practical's 3-conv keypoint CNN on Kaggle-format faces",
    "keypoint-net": "torchlab's keypoint CNN (residual, BatchNorm, heat maps + soft-argmax) with augmentation",
}

TASKS = {name: register_task(Task(
    name=name, help=text, config_class=type(RECIPES[name]["default"]), recipes=RECIPES[name],
    description=__doc__ or "", models=(name,), cpu_recipe="cpu" if "cpu" in RECIPES[name] else None,
    package=__package__,
)) for name, text in HELP.items()}
