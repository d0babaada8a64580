"""Keypoints benchmarks: the CSV loader's speed, and validation RMSE of every model on synthetic faces.

    python tools/bench_keypoints.py                     # loader (7,000 rows) + RMSE table
    python tools/bench_keypoints.py --only loader
    python tools/bench_keypoints.py --only rmse --synthetic 1000 --net-epochs 6 --device cpu

Loader: a 7,000-row Kaggle-format training.csv (synthetic faces, tiled) is read twice, once the
seed's way (pandas, then one `np.fromstring` per image) and once with torchlab's bulk parser;
both results are checked equal and the ratio is printed.

RMSE: the mean-keypoint baseline, keypoint-fcn and keypoint-cnn with the seed recipe, and
keypoint-net with its default recipe (or fewer epochs with --net-epochs, said in the table),
all on the same validation faces. Figures land in --out; a comparison figure shows the FCN
(red), CNN (blue) and keypoint-net (orange) against the truth (green) on the same faces.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def bench_loader(rows: int, folder: Path) -> dict:
    import pandas as pd

    from torchlab.data.keypoints import COORD_COLUMNS, format_training_csv, read_training_csv
    from torchlab.data.synthetic_faces import make_faces

    path = folder / f"training_{rows}.csv"
    if not path.exists():
        table = make_faces(500, seed=11)
        reps = -(-rows // 500)
        images = np.tile(table.images, (reps, 1, 1))[:rows]
        keypoints = np.tile(table.keypoints, (reps, 1))[:rows]
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(format_training_csv(images, keypoints))

    start = time.perf_counter()
    frame = pd.read_csv(path)
    pixels = frame["Image"].apply(lambda s: np.fromstring(s, sep=" ", dtype=np.float32))
    seed_images = np.vstack(pixels.values)
    seed_keypoints = frame[list(COORD_COLUMNS)].to_numpy(np.float32)
    seed_seconds = time.perf_counter() - start

    start = time.perf_counter()
    table = read_training_csv(path)
    ours_seconds = time.perf_counter() - start

    assert np.array_equal(seed_images.reshape(table.images.shape).astype(np.uint8), table.images)
    assert np.allclose(seed_keypoints, table.keypoints, equal_nan=True)
    return {
        "rows": rows,
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "seed_seconds": round(seed_seconds, 2),
        "torchlab_seconds": round(ours_seconds, 2),
        "speedup": round(seed_seconds / ours_seconds, 1),
    }


def train(task: str, recipe: str, out: Path, **overrides) -> dict:
    """The task's recipe through torchlab.train; returns the summary `torchlab train` prints."""
    import torchlab

    return torchlab.train(task, recipe, out=out, progress=False, overwrite=True, **overrides).summary


def bench_rmse(
    synthetic: int, net_epochs: int | None, device: str, folder: Path, models: list[str], data: str | None = None
) -> list[dict]:
    import torch

    import torchlab
    from torchlab.data.keypoints import split_rows, to_tensors
    from torchlab.data.synthetic_faces import load_table
    from torchlab.engine.inference import predict_outputs
    from torchlab.tasks.keypoints.plots import plot_faces

    runs = [
        ("keypoint-fcn", "seed", {}),
        ("keypoint-cnn", "seed", {}),  # (model, its recipe, fields)
        ("keypoint-net", "default", {"epochs": net_epochs} if net_epochs else {}),
    ]
    rows, predictions = [], {}
    table = load_table(data, synthetic)
    val_rows = split_rows(table, "mask").val
    images = to_tensors(table, val_rows)[0]
    for task, recipe, extra in runs:
        if task in models:
            source = {"data": data} if data else {"synthetic": synthetic}
            summary = train("keypoints", recipe, folder / task, model=task, device=device, **source, **extra)
        elif (folder / task / "best.pt").exists():  # trained by an earlier run of this script
            summary = torchlab.load(folder / task / "best.pt")[1]["metrics"]
            summary.update(epochs=len(torchlab.load(folder / task / "best.pt")[1]["history"]), fit_seconds=float("nan"))
        else:
            continue
        if not rows:
            rows.append(
                {
                    "model": "mean-keypoint baseline",
                    "recipe": "-",
                    "val_rmse_px": summary["baseline_rmse_px"],
                    "epochs": 0,
                    "fit_seconds": 0.0,
                }
            )
        label = recipe + (f", {extra['epochs']} epochs" if extra else "")
        rows.append(
            {
                "model": task,
                "recipe": label,
                "val_rmse_px": summary["val_rmse_px"],
                "epochs": summary["epochs"],
                "fit_seconds": summary["fit_seconds"],
            }
        )
        model, _ = torchlab.load(folder / task / "best.pt", device="cpu")
        predictions[task] = predict_outputs(model, images[:5]).numpy()
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    shown = val_rows[:5]
    plot_faces(
        table.images[shown],
        table.keypoints[shown],
        predictions,
        folder / "comparison.png",
        title="validation faces: true (green), FCN (red), CNN (blue), keypoint-net (orange)",
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("loader", "rmse"))
    parser.add_argument("--rows", type=int, default=7000, help="rows of the loader benchmark file")
    parser.add_argument("--synthetic", type=int, default=2000, help="synthetic faces for the RMSE table")
    parser.add_argument("--net-epochs", type=int, help="train keypoint-net for this many epochs (default: its recipe)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--models",
        nargs="*",
        default=["keypoint-fcn", "keypoint-cnn", "keypoint-net"],
        help="models to train now; the others are read from --out if an earlier run left them",
    )
    parser.add_argument("--data", help="a Kaggle-format training.csv[.gz] of real faces (default: synthetic faces)")
    parser.add_argument("--out", default=".bench/keypoints")
    args = parser.parse_args()
    folder = Path(args.out)
    results: dict = {}
    if args.only in (None, "loader"):
        results["loader"] = bench_loader(args.rows, folder)
        r = results["loader"]
        print(
            f"loader, {r['rows']} rows ({r['file_mb']} MB): seed (pandas + np.fromstring per row) "
            f"{r['seed_seconds']} s, torchlab {r['torchlab_seconds']} s, {r['speedup']}x faster"
        )
    if args.only in (None, "rmse"):
        results["rmse"] = bench_rmse(args.synthetic, args.net_epochs, args.device, folder, args.models, args.data)
        faces = args.data or f"synthetic faces (n={args.synthetic})"
        print(f"\nvalidation RMSE on {faces}, device {args.device}")
        print("| model | recipe | val RMSE (px) | epochs | fit seconds |\n| --- | --- | ---: | ---: | ---: |")
        for row in results["rmse"]:
            print(
                f"| {row['model']} | {row['recipe']} | {row['val_rmse_px']:.3f} | {row['epochs']} "
                f"| {row['fit_seconds']} |"
            )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"results_{args.only or 'all'}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
