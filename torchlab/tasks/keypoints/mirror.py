"""Where a data set's labels put a face's mirror: the constant c of the horizontal flip x -> c - x.

The flip augmentation and flip averaging move every x of a mirrored face to c - x. c is a property
of how a data set was labeled, not of the images: pixel-centered labels of a 96-pixel face give the
geometric 95; labels that sit d px right of the pixel centers give 95 + 2d (our development faces:
97.35). It is measured from the run's own training faces: a net trained without flips has learned the
labels' convention, so keypoint k of a face (label x) lands, on the mirror image, where keypoint
mirror(k) is predicted (x'), and x + x' = c. The median over every labeled x is the measurement
(tools/mirror_constant.py prints its spread per keypoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchlab.data.keypoints import FLIP_SUM, flip_permutation
from torchlab.engine.inference import predict_outputs

MIN_POINTS = 30  # fewer labeled x values than this: no measurement
PLAUSIBLE = (FLIP_SUM - 4.0, FLIP_SUM + 4.0)  # labels more than 2 px off the pixel centers: a net that learned nothing


@dataclass(frozen=True)
class Mirror:
    """The flip's constant for a run and how it was found (said in the summary, kept in the checkpoint)."""

    flip_sum: float
    how: str

    def describe(self) -> str:
        return f"x -> {self.flip_sum:.2f} - x ({self.how})"


def mirror_sums(model: nn.Module, images: torch.Tensor, keypoints: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """(n, 15): label x plus the x `model` predicts for the same point on the mirrored face (NaN where unlabeled).

    images (n, 1, 96, 96) in [0, 1], keypoints and mask (n, 30) as data.keypoints.to_tensors gives them.
    """
    averaging = getattr(model, "flip_average", False)
    switchable: Any = model  # a model with a flip_average switch (KeypointNet); nn.Module does not declare it
    if averaging:
        switchable.flip_average = False  # the mirror pass alone: the average would assume a constant already
    try:
        mirrored = predict_outputs(model, images.flip(-1), 256).double().numpy()
    finally:
        if averaging:
            switchable.flip_average = True
    mirrored_x = mirrored[:, 0::2][:, flip_permutation()]  # column k: where the net puts keypoint k's mirror
    labeled = mask[:, 0::2].cpu().numpy() > 0
    return np.where(labeled, keypoints[:, 0::2].cpu().double().numpy() + mirrored_x, np.nan)


def measure_mirror(model: nn.Module, images: torch.Tensor, keypoints: torch.Tensor, mask: torch.Tensor) -> float | None:
    """The median of mirror_sums over every labeled x; None with fewer than MIN_POINTS of them."""
    sums = mirror_sums(model, images, keypoints, mask)
    values = sums[np.isfinite(sums)]
    return float(np.median(values)) if values.size >= MIN_POINTS else None


def recorded_mirror(checkpoint: dict) -> Mirror | None:
    """The Mirror a run's checkpoint recorded (None when it holds none): a resumed run goes on with it."""
    if "flip_sum" not in checkpoint:
        return None
    return Mirror(float(checkpoint["flip_sum"]), str(checkpoint.get("mirror", "recorded in last.pt")))


def read_recorded_mirror(path: Path) -> Mirror | None:
    from torchlab.engine.checkpoint import read_checkpoint

    return recorded_mirror(read_checkpoint(path)) if path.exists() else None
