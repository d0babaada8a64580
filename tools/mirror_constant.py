"""Where the mirror of a Kaggle face's keypoints lies: the constant c of the flip x -> c - x.

    python tools/mirror_constant.py CHECKPOINT --data ../shared/data/faces/training.csv.gz

CHECKPOINT should be a keypoint net trained without flips (`--flip 0`, e.g. the `cpu` recipe), so it
has learned the labels' own convention and never the flip's. It predicts each face's keypoints on the
mirrored image; keypoint k of the face is keypoint mirror(k) there, at x' in the mirrored image. If the
labels' mirror is x -> c - x, then x + x' = c. The script prints the median and spread of x + x' over
every labeled keypoint of the training rows and of the validation rows, and the median per keypoint.
For pixel-centered labels c = 95; the value measured here is keypoints.config.KAGGLE_FLIP_SUM.
"""

from __future__ import annotations

import argparse

import numpy as np
from torch import nn

from torchlab.api import open_checkpoint
from torchlab.data.keypoints import KEYPOINT_NAMES, flip_permutation
from torchlab.tasks.keypoints.infer import validation_data
from torchlab.tasks.keypoints.kaggle import predict_keypoints


def mirror_sums(model: nn.Module, images: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(n, 15) label x plus the x predicted for the same point on the mirrored face (NaN where unlabeled)."""
    mirrored_x = predict_keypoints(model, images[:, :, ::-1].copy())[:, 0::2]
    return keypoints[:, 0::2] + mirrored_x[:, flip_permutation()]


def describe(name: str, sums: np.ndarray) -> None:
    """One line: the median, standard deviation and count of the finite sums."""
    values = sums[np.isfinite(sums)]
    print(f"{name}: median {np.median(values):.2f}, mean {values.mean():.2f}, sd {values.std():.2f} "
          f"over {values.size} labeled keypoints")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a keypoint checkpoint trained without flips")
    parser.add_argument("--data", help="the Kaggle training.csv(.gz) it was trained on (default: the one it names)")
    args = parser.parse_args()
    loaded = open_checkpoint(args.checkpoint, "cpu")
    if getattr(loaded.model, "flip_average", False):
        loaded.model.flip_average = False  # the mirror pass alone, not the average
    table, split = validation_data(loaded.meta, args.data)
    for name, rows in (("training rows", split.train), ("validation rows", split.val)):
        sums = mirror_sums(loaded.model, table.images[rows], table.keypoints[rows])
        describe(name, sums)
        if name == "training rows":
            medians = np.nanmedian(sums, axis=0)
            print("  per keypoint: " + ", ".join(f"{k} {m:.2f}" for k, m in zip(KEYPOINT_NAMES, medians)))


if __name__ == "__main__":
    main()
