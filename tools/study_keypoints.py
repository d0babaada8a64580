"""What helps keypoint-net on real faces: a study on the validation split (never a test split).

    python tools/study_keypoints.py --data ../shared/data/faces/training.csv.gz --epochs 3 \
        --variants baseline no-augment no-flip width-24 cosine
    python tools/study_keypoints.py --data ../shared/data/faces/training_missing.csv.gz --variants baseline drop
    python tools/study_keypoints.py --list

Each variant is the `cpu` recipe with one change, trained with `torchlab.train` for `--epochs`
epochs (the one-cycle schedule ends there) and the same seed. The validation faces are the task's
own (10% of the complete rows, random_state 42); each row scores the best checkpoint twice, as
trained and with test-time flip averaging (`flip_average`: the mirror image's keypoints flipped
back and averaged in), so that column costs no training. One Markdown row per variant and seed,
with the 1-minute load average when it started.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import torchlab
from torchlab.api import open_checkpoint

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "baseline": ("the cpu recipe, shortened to --epochs", {}),
    "no-augment": ("no augmentation at all", {"augment": False}),
    "no-flip": ("augmentation without the horizontal flip", {"flip": 0.0}),
    "flip-average": ("trained with flip averaging on (validation each epoch averages the mirror too)",
                     {"flip_average": True}),
    "drop": ("incomplete rows dropped instead of masked", {"missing": "drop"}),
    "width-24": ("first stage 24 channels instead of 32", {"width": 24}),
    "width-48": ("first stage 48 channels", {"width": 48}),
    "cosine": ("cosine schedule instead of one-cycle", {"schedule": "cosine"}),
    "lr-4e-3": ("peak learning rate 4e-3 instead of 2e-3", {"lr": 4e-3}),
    "batch-32": ("batches of 32 instead of 64", {"batch_size": 32}),
}


def run_variant(name: str, data: str, epochs: int, seed: int, out: str) -> dict[str, Any]:
    """Train one variant; its validation RMSE as trained and with flip averaging, and its seconds."""
    _, overrides = VARIANTS[name]
    result = torchlab.train("keypoint-net", "cpu", out=out, device="cpu", progress=False, figures=False,
                            seed=seed, data=data, epochs=epochs, overwrite=True, **overrides)
    loaded = open_checkpoint(result.best_checkpoint, "cpu")
    plain = torchlab.evaluate(loaded, device="cpu")["val_rmse_px"]
    loaded.model.flip_average = True
    flipped = torchlab.evaluate(loaded, device="cpu")["val_rmse_px"]
    return {"rmse": plain, "rmse_flip": flipped, "seconds": result.fit_seconds,
            "best_epoch": result.summary.get("best_epoch"), "rows": result.summary.get("train_rows")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="Kaggle-format training.csv(.gz)")
    parser.add_argument("--variants", nargs="+", default=["baseline"], choices=sorted(VARIANTS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (text, overrides) in VARIANTS.items():
            print(f"{name:12} {text} {overrides or ''}")
        return 0
    if not args.data:
        parser.error("--data is required (a Kaggle-format training.csv)")
    print("| variant | change | seed | epochs | training rows | best epoch | val RMSE | + flip averaging "
          "| fit seconds | load (1 min) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.variants:
        for seed in args.seeds:
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory() as out:
                row = run_variant(name, args.data, args.epochs, seed, out)
            print(f"| {name} | {VARIANTS[name][0]} | {seed} | {args.epochs} | {row['rows']} | {row['best_epoch']} "
                  f"| {row['rmse']:.4f} px | {row['rmse_flip']:.4f} px | {row['seconds']:.1f} | {load:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
