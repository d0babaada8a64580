"""What helps keypoint-net on real faces: a study on the validation split (never a test split).

    python tools/study_keypoints.py --data ../shared/data/faces/training.csv.gz --epochs 3 \
        --variants baseline no-augment no-flip width-24 cosine
    python tools/study_keypoints.py --data ../shared/data/faces/training_missing.csv.gz --variants baseline drop
    python tools/study_keypoints.py --list

Each variant is keypoint-net's `default` recipe (flip on; the `cpu` recipe before the study) with
one change, trained with `torchlab.train` for `--epochs` epochs (the one-cycle schedule ends there)
and the same seed. The validation faces are the task's
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
from typing import Any

import torchlab
from torchlab.api import open_checkpoint

NO_AUGMENT = {"flip": 0.0, "degrees": 0.0, "scale": 0.0, "shift": 0.0, "brightness": 0.0, "contrast": 0.0}


def only(**on: float) -> dict[str, Any]:
    """Overrides that keep one augmentation (at the recipe's strength unless given) and turn the rest off."""
    return {**NO_AUGMENT, **on}


VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "baseline": ("the default recipe (flip 0.5), shortened to --epochs", {}),
    "no-augment": ("no augmentation at all", {"augment": False}),
    "no-flip": ("augmentation without the horizontal flip", {"flip": 0.0}),
    "flip-sum-96": ("the flip maps x to 96 - x", {"flip_sum": 96.0}),
    "flip-sum-97": ("the flip maps x to 97 - x", {"flip_sum": 97.0}),
    "only-flip": ("augmentation: the horizontal flip alone", only(flip=0.5)),
    "only-rotate": ("augmentation: rotation (12 degrees) alone", only(degrees=12.0)),
    "only-rotate-15": ("augmentation: rotation (15 degrees) alone", only(degrees=15.0)),
    "only-scale": ("augmentation: scale (8%) alone", only(scale=0.08)),
    "only-scale-10": ("augmentation: scale (10%) alone", only(scale=0.10)),
    "only-shift": ("augmentation: shift (5 px) alone", only(shift=5.0)),
    "only-color": ("augmentation: brightness and contrast alone", only(brightness=0.15, contrast=0.25)),
    "heatmap-48": ("48x48 heat maps instead of 24x24", {"head": "heatmap-48"}),
    "regression": ("direct regression instead of heat maps", {"head": "regression"}),
    "flip-sum-97.35": (
        "the flip maps x to 97.35 - x (the mirror constant measured on the training faces)",
        {"flip_sum": 97.35},
    ),
    "no-flip-no-color": (
        "augmentation without the flip, brightness or contrast",
        {"flip": 0.0, "brightness": 0.0, "contrast": 0.0},
    ),
    "flip-average": (
        "trained with flip averaging on (validation each epoch averages the mirror too)",
        {"flip_average": True},
    ),
    "ema-0.999": (
        "validated and saved: a moving average of the weights (decay 0.999, with its warm-up)",
        {"ema": 0.999},
    ),
    "no-flip-ema-0.999": ("no flip, and the moving average of the weights (decay 0.999)", {"flip": 0.0, "ema": 0.999}),
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
    result = torchlab.train(
        "keypoints",
        "default",
        out=out,
        device="cpu",
        progress=False,
        figures=False,
        seed=seed,
        data=data,
        epochs=epochs,
        overwrite=True,
        **overrides,
    )
    loaded = open_checkpoint(result.best_checkpoint, "cpu")
    plain = torchlab.evaluate(loaded, device="cpu")["val_rmse_px"]
    loaded.model.flip_average = True
    flipped = torchlab.evaluate(loaded, device="cpu")["val_rmse_px"]
    return {
        "rmse": plain,
        "rmse_flip": flipped,
        "seconds": result.fit_seconds,
        "best_epoch": result.summary.get("best_epoch"),
        "rows": result.summary.get("train_rows"),
    }


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
    print(
        "| variant | change | seed | epochs | training rows | best epoch | val RMSE | + flip averaging "
        "| fit seconds | load (1 min) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.variants:
        for seed in args.seeds:
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory() as out:
                row = run_variant(name, args.data, args.epochs, seed, out)
            print(
                f"| {name} | {VARIANTS[name][0]} | {seed} | {args.epochs} | {row['rows']} | {row['best_epoch']} "
                f"| {row['rmse']:.4f} px | {row['rmse_flip']:.4f} px | {row['seconds']:.1f} | {load:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
