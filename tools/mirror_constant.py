"""Where the mirror of a Kaggle face's keypoints lies: the constant c of the flip x -> c - x.

    python tools/mirror_constant.py CHECKPOINT --data ../shared/data/faces/training.csv.gz

CHECKPOINT should be a keypoint net trained without flips (`--flip 0`, e.g. the `cpu` recipe), so it
has learned the labels' own convention and never the flip's. It predicts each face's keypoints on the
mirrored image; keypoint k of the face is keypoint mirror(k) there, at x' in the mirrored image. If the
labels' mirror is x -> c - x, then x + x' = c. The script prints the median and spread of x + x' over
every labeled keypoint of the training rows and of the validation rows, and the median per keypoint.
For pixel-centered labels c = 95; on the development faces it is 97.35 (data.facts.KAGGLE_FLIP_SUM).
A keypoint run on a CSV measures its own faces' c the same way before it flips any (tasks/keypoints/mirror.py).
"""

from __future__ import annotations

import argparse

import numpy as np

from torchlab.api import open_checkpoint
from torchlab.data.keypoints import KEYPOINT_NAMES, to_tensors
from torchlab.tasks.keypoints.infer import validation_data
from torchlab.tasks.keypoints.mirror import mirror_sums


def describe(name: str, sums: np.ndarray) -> None:
    """One line: the median, standard deviation and count of the finite sums."""
    values = sums[np.isfinite(sums)]
    print(
        f"{name}: median {np.median(values):.2f}, mean {values.mean():.2f}, sd {values.std():.2f} "
        f"over {values.size} labeled keypoints"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a keypoint checkpoint trained without flips")
    parser.add_argument("--data", help="the Kaggle training.csv(.gz) it was trained on (default: the one it names)")
    args = parser.parse_args()
    loaded = open_checkpoint(args.checkpoint, "cpu")
    table, split = validation_data(loaded.meta, args.data)
    for name, rows in (("training rows", split.train), ("validation rows", split.val)):
        sums = mirror_sums(loaded.model, *to_tensors(table, rows))  # the mirror pass alone, never the average
        describe(name, sums)
        if name == "training rows":
            medians = np.nanmedian(sums, axis=0)
            print("  per keypoint: " + ", ".join(f"{k} {m:.2f}" for k, m in zip(KEYPOINT_NAMES, medians)))


if __name__ == "__main__":
    main()
