"""How `keypoints` trains its model (keypoint-net, keypoint-cnn or keypoint-fcn): faces, masked MSE, optimizer
and Trainer from a KeypointConfig. Config: tasks/keypoints/config.py; evaluate/predict: infer.py (photos: faces.py,
Kaggle files and RMSE: kaggle.py); figures: plots.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from torchlab.data.batcher import TensorBatcher
from torchlab.data.keypoints import (
    DEVICE_FACE_BYTES,
    FACE_BYTES,
    KEYPOINT_NAMES,
    PIXEL_SCALE,
    SYNTHETIC_SEED,
    KeypointSplit,
    split_rows,
    to_tensors,
)
from torchlab.data.keypoints_augment import KeypointAugment
from torchlab.data.synthetic_faces import load_table
from torchlab.engine.checkpoint import add_metrics
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import RMSE, masked_mse, masked_rmse
from torchlab.engine.optim import make_optimizer
from torchlab.errors import DataError
from torchlab.models import build_model
from torchlab.reporting.progress import mode
from torchlab.runtime.guards import check_memory
from torchlab.tasks.keypoints.config import KeypointConfig
from torchlab.tasks.keypoints.kaggle import (
    mean_keypoint_baseline,
    mean_keypoints,
    per_keypoint_rmse,
)
from torchlab.tasks.run import Run, RunResult

GENERATION_PROGRESS_FROM = 5000  # synthetic faces (about 20 s on a 2-core CPU); fewer are drawn without progress
NORMALIZATION = {"divide_by": PIXEL_SCALE, "input": "96x96 gray levels 0..255",
                 "output": "pixels, pixel j centered at x = j"}  # what a checkpoint's model takes and gives


def make_model(model_name: str, cfg: KeypointConfig, mean: list[float]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model, its constructor arguments), its output started at the mean keypoints `mean` when cfg.mean_init."""
    model_kwargs = cfg.model_kwargs(mean)
    model = build_model(model_name, **model_kwargs)
    if cfg.mean_init and hasattr(model, "fc3"):
        with torch.no_grad():  # start the seed architectures at the mean face, too
            model.fc3.bias.copy_(torch.tensor(mean))
    return model, model_kwargs


def make_augment(cfg: KeypointConfig) -> KeypointAugment | None:
    """The training faces' augmentation (each transform's strength from cfg), None with augment=False."""
    if not cfg.augment:
        return None
    return KeypointAugment(flip=cfg.flip, flip_sum=cfg.mirror_sum(), degrees=cfg.degrees, scale=cfg.scale,
                           shift=cfg.shift, brightness=cfg.brightness, contrast=cfg.contrast)


def data_meta(cfg: KeypointConfig, split: KeypointSplit) -> dict[str, Any]:
    """Where the faces came from and how they were split (kept in the checkpoint, so evaluate finds them)."""
    return {"csv": str(Path(cfg.data).resolve()) if cfg.data else None,
            "synthetic": None if cfg.data else cfg.synthetic, "synthetic_seed": SYNTHETIC_SEED,
            "missing": cfg.missing, "train_rows": len(split.train), "val_rows": len(split.val)}


def train(cfg: KeypointConfig, run: Run) -> RunResult:
    """Train cfg.model (keypoint-net, -cnn or -fcn) on the faces `cfg` describes; write
    best.pt/last.pt/history.csv and figures."""
    model_name = cfg.model
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
    model, model_kwargs = make_model(model_name, cfg, mean)
    transform = make_augment(cfg)
    batches = TensorBatcher(train_t, cfg.batch_size, shuffle=True, device=run.device, transform=transform,
                            seed=run.seed)
    val = TensorBatcher(val_t, 256, device=run.device)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
    data = data_meta(cfg, split)
    trainer = run.trainer(
        model, masked_mse, optimizer, metrics={"rmse": RMSE()}, monitor="val_rmse", mode="min",
        scheduler=scheduler, scheduler_interval=interval,
        meta={"model_name": model_name, "model_kwargs": model_kwargs,
              "normalization": NORMALIZATION, "keypoint_names": list(KEYPOINT_NAMES), "flip_sum": cfg.mirror_sum(),
              "augment": cfg.augment, "data": data},
    )
    fit = trainer.fit(batches, val, resume=run.resume)
    pred = predict_outputs(model, val_t[0], 256).numpy()
    rmse = masked_rmse(pred, val_t[1], val_t[2])
    per_kp = per_keypoint_rmse(pred, val_t[1].numpy(), val_t[2].numpy())
    summary: dict[str, Any] = {
        "task": run.task, "model": model_name, "recipe": run.recipe, "device": str(run.device),
        "data": data["csv"] or f"synthetic faces ({cfg.synthetic})", "missing": cfg.missing,
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
            from torchlab.tasks.keypoints.plots import write_keypoint_figures

            figures = write_keypoint_figures(fit.history, table, split, pred, per_kp, run.out / "figures", model_name)
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
