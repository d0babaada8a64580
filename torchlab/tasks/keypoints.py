"""How `keypoint-fcn`, `keypoint-cnn` and `keypoint-net` train, evaluate and predict; their settings and recipes are in torchlab/recipes/keypoints.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from torchlab.checkpoint import add_metrics
from torchlab.data.batcher import TensorBatcher
from torchlab.data.keypoints import KEYPOINT_NAMES, KeypointSplit, KeypointTable, split_rows
from torchlab.data.keypoints_augment import KeypointAugment
from torchlab.errors import DataError, UsageError
from torchlab.guards import check_memory
from torchlab.inference import predict_outputs
from torchlab.keypoints_eval import (
    DEVICE_FACE_BYTES,
    FACE_BYTES,
    PIXEL_SCALE,
    SYNTHETIC_SEED,
    load_table,
    masked_mse,
    mean_keypoint_baseline,
    mean_keypoints,
    overall_rmse_from,
    per_keypoint_rmse,
    to_tensors,
    validation_data,
)
from torchlab.keypoints_predict import format_prediction, predict_photo, predict_test_csv, predict_validation_rows
from torchlab.metrics import RMSE, masked_rmse
from torchlab.models import build_model
from torchlab.progress import mode
from torchlab.recipes.keypoints import CARDS, RECIPES, KeypointConfig, KeypointNetConfig
from torchlab.tasks import register_task
from torchlab.tasks.base import InferenceOptions, Run, RunResult, TaskSpec, make_optimizer

__all__ = ["KeypointConfig", "KeypointNetConfig", "RECIPES", "train", "evaluate", "predict"]

GENERATION_PROGRESS_FROM = 5000  # synthetic faces (about 20 s on a 2-core CPU); fewer are drawn without progress


def train(cfg: KeypointConfig, run: Run, model_name: str) -> RunResult:
    """Train `model_name` on the faces `cfg` describes; write best.pt/last.pt/history.csv and figures."""
    if not cfg.data:
        check_synthetic_memory(cfg.synthetic, run.device)
    report, done = generation_progress(0 if cfg.data else cfg.synthetic, run.progress if run.is_main else False)
    table = load_table(cfg.data, cfg.synthetic, progress=report)
    done()
    split = split_rows(table, cfg.missing)
    if len(split.train) == 0:
        raise DataError("no training rows are left after the validation split; use more data")
    train_t, val_t = to_tensors(table, split.train), to_tensors(table, split.val)
    baseline = mean_keypoint_baseline(train_t[1], train_t[2], val_t[1], val_t[2])
    mean = mean_keypoints(train_t[1], train_t[2])
    model_kwargs = cfg.model_kwargs(mean)
    model = build_model(model_name, **model_kwargs)
    if cfg.mean_init and hasattr(model, "fc3"):
        with torch.no_grad():  # start the seed architectures at the mean face, too
            model.fc3.bias.copy_(torch.tensor(mean))
    transform = KeypointAugment(flip_sum=cfg.flip_sum) if cfg.augment else None
    batches = TensorBatcher(train_t, cfg.batch_size, shuffle=True, device=run.device, transform=transform,
                            seed=run.seed)
    val = TensorBatcher(val_t, 256, device=run.device)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
    data_meta = {"csv": str(Path(cfg.data).resolve()) if cfg.data else None,
                 "synthetic": None if cfg.data else cfg.synthetic, "synthetic_seed": SYNTHETIC_SEED,
                 "missing": cfg.missing, "train_rows": len(split.train), "val_rows": len(split.val)}
    trainer = run.trainer(
        model, masked_mse, optimizer, metrics={"rmse": RMSE()}, monitor="val_rmse", mode="min",
        scheduler=scheduler, scheduler_interval=interval,
        meta={"model_name": model_name, "model_kwargs": model_kwargs,
              "normalization": {"divide_by": PIXEL_SCALE, "input": "96x96 grey levels 0..255",
                                "output": "pixels, pixel j centred at x = j"},
              "keypoint_names": list(KEYPOINT_NAMES), "flip_sum": cfg.flip_sum, "augment": cfg.augment,
              "data": data_meta},
    )
    fit = trainer.fit(batches, val, resume=run.resume)
    pred = predict_outputs(model, val_t[0], 256).numpy()
    rmse = masked_rmse(pred, val_t[1], val_t[2])
    per_kp = per_keypoint_rmse(pred, val_t[1].numpy(), val_t[2].numpy())
    summary: dict[str, Any] = {
        "task": run.task, "recipe": run.recipe, "device": str(run.device),
        "data": data_meta["csv"] or f"synthetic faces ({cfg.synthetic})", "missing": cfg.missing,
        "augment": cfg.augment, "train_rows": len(split.train), "val_rows": len(split.val),
        "epochs": fit.epochs_run, "best_epoch": fit.best_epoch, "fit_seconds": round(fit.fit_seconds, 2),
        "val_rmse_px": round(rmse, 4), "baseline_rmse_px": round(baseline, 4),
        "worst_keypoint": f"{KEYPOINT_NAMES[int(np.nanargmax(per_kp))]} ({np.nanmax(per_kp):.3f} px)",
        "checkpoint": str(run.out / "best.pt"),
    }
    figures: list[Path] = []
    if run.is_main:
        add_metrics(run.out / "best.pt", {"val_rmse_px": rmse, "baseline_rmse_px": baseline,
                                          **{f"rmse_{n}": float(v) for n, v in zip(KEYPOINT_NAMES, per_kp)}})
        if run.figures:
            figures = write_figures(fit.history, table, split, pred, per_kp, run.out / "figures", model_name)
            summary["figures"] = str(run.out / "figures")
    return run.result(fit, summary, figures)


def check_synthetic_memory(n: int, device: torch.device) -> None:
    """Refuse --synthetic n before drawing a face when its training tensors cannot fit in memory."""
    advice = f"lower --synthetic (a face takes about {FACE_BYTES // 1000} KB while training)"
    check_memory(n * FACE_BYTES, f"--synthetic {n:,}", advice, "cpu")
    if device.type == "cuda":
        check_memory(n * DEVICE_FACE_BYTES, f"--synthetic {n:,}", "lower --synthetic", device)


def generation_progress(n: int, setting: bool | None) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """(progress callback or None, close) for drawing n synthetic faces: a bar on a terminal, a line per
    tenth with progress=True elsewhere; nothing below GENERATION_PROGRESS_FROM faces."""
    style = mode(setting, sys.stderr)
    if n < GENERATION_PROGRESS_FROM or style is None:
        return None, lambda: None
    if style == "bars":
        bar = tqdm(total=n, desc="drawing synthetic faces", unit="face", file=sys.stderr, leave=False, mininterval=0.5)
        return (lambda done: bar.update(done - bar.n)), bar.close
    shown = [0]

    def line(done: int) -> None:
        if done * 10 // n > shown[0] or done == n:
            shown[0] = done * 10 // n
            tqdm.write(f"drawing synthetic faces: {done:,}/{n:,} ({100 * done // n}%)", file=sys.stderr)
    return line, lambda: None


def write_figures(history: list[dict[str, float]], table: KeypointTable, split: KeypointSplit, pred: np.ndarray,
                  per_kp: np.ndarray, folder: Path, name: str) -> list[Path]:
    """Loss curves, predictions on validation faces, RMSE per keypoint, and some training faces."""
    from torchlab.plots.common import plot_history
    from torchlab.plots.keypoints import plot_faces, plot_keypoint_rmse

    paths = [folder / f for f in ("loss.png", "faces.png", "keypoint_rmse.png", "training_faces.png")]
    plot_history(history, paths[0], title=f"{name}: masked MSE (pixels²) and RMSE (pixels)")
    shown = np.arange(min(10, len(split.val)))
    rows = split.val[shown]
    plot_faces(table.images[rows], table.keypoints[rows], {name: pred[shown]}, paths[1],
               title=f"{name} on validation faces (green: true)")
    plot_keypoint_rmse(KEYPOINT_NAMES, {name: per_kp}, paths[2],
                       title=f"{name}: validation RMSE per keypoint (overall {overall_rmse_from(per_kp):.3f} px)")
    sample = split.train[:9]
    plot_faces(table.images[sample], table.keypoints[sample], {}, paths[3], columns=3,
               title="training faces and their labelled keypoints")
    return paths


def evaluate(model: nn.Module, meta: dict[str, Any], options: InferenceOptions) -> dict[str, float]:
    """RMSE (pixels) overall and per keypoint on the checkpoint's validation faces, and the mean-face baseline."""
    table, split = validation_data(meta, options.data)
    images, truth, mask = to_tensors(table, split.val)
    train_t = to_tensors(table, split.train)
    pred = predict_outputs(model, images, options.batch_size).numpy()
    per_kp = per_keypoint_rmse(pred, truth.numpy(), mask.numpy())
    out = {"val_rmse_px": masked_rmse(pred, truth, mask),
           "baseline_rmse_px": mean_keypoint_baseline(train_t[1], train_t[2], truth, mask),
           "val_rows": len(split.val)}
    out.update({f"rmse_{n}": float(v) for n, v in zip(KEYPOINT_NAMES, per_kp)})
    return out


def predict(model: nn.Module, meta: dict[str, Any], inputs: list[str], options: InferenceOptions) -> list[dict[str, Any]]:
    """Records for the validation faces (--index), each face of each photo, and each test.csv (or Kaggle submission).

    Files go only into options.out (a folder): photo overlays, test.csv tables, submission.csv.
    """
    csv_inputs = [str(p).lower().endswith(".csv") for p in inputs]
    photos = csv_inputs.count(False)
    if options.submission and not any(csv_inputs):
        raise UsageError("--submission needs Kaggle's test.csv as the input: torchlab predict CKPT test.csv "
                         "--submission IdLookupTable.csv --out FOLDER")
    if options.boxes and photos != 1:
        raise UsageError(f"--box gives faces in one photo, but {photos} photos were given: predict one photo with --box")
    records: list[dict[str, Any]] = []
    if options.index:
        table, split = validation_data(meta, options.data)
        records += predict_validation_rows(model, table, split.val, list(options.index), options.batch_size)
    for path, is_csv in zip(inputs, csv_inputs):
        if is_csv:
            records.append(predict_test_csv(model, path, options.out, options.format, options.batch_size,
                                            options.submission))
        else:
            records += predict_photo(model, path, options.out, options.boxes, options.detect)
    if not records:
        raise UsageError("give a photo, a test.csv, or --index N (a validation face)")
    return records


def example_inputs(meta: dict[str, Any], options: InferenceOptions, count: int) -> torch.Tensor:
    """The first `count` validation faces of the checkpoint's data (or --data), pixels in [0, 1]."""
    table, split = validation_data(meta, options.data)
    return to_tensors(table, split.val[:count])[0]


for _name, _card in CARDS.items():
    register_task(TaskSpec.from_card(_card, train=partial(train, model_name=_name), evaluate=evaluate, predict=predict,
                                     format_prediction=format_prediction, example_inputs=example_inputs))
