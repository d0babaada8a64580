"""How `keypoints` trains its model (keypoint-net, keypoint-cnn or keypoint-fcn): faces, masked MSE, optimizer
and Trainer from a KeypointConfig. Config: tasks/keypoints/config.py; evaluate/predict: infer.py (photos: faces.py,
Kaggle files and RMSE: kaggle.py); figures: plots.py.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

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
from torchlab.data.keypoints_augment import FLIP_SUM, KeypointAugment
from torchlab.data.synthetic_faces import load_table
from torchlab.engine.checkpoint import add_metrics
from torchlab.engine.inference import predict_outputs
from torchlab.engine.metrics import RMSE, masked_mse, masked_rmse
from torchlab.engine.optim import make_optimizer
from torchlab.engine.trainer import Trainer
from torchlab.errors import DataError
from torchlab.models import build_model
from torchlab.reporting.progress import mode
from torchlab.runtime import distributed
from torchlab.runtime.guards import check_memory
from torchlab.tasks.keypoints.config import KeypointConfig
from torchlab.tasks.keypoints.kaggle import (
    mean_keypoint_baseline,
    mean_keypoints,
    per_keypoint_rmse,
)
from torchlab.tasks.keypoints.mirror import (
    PLAUSIBLE,
    Mirror,
    measure_mirror,
    read_recorded_mirror,
)
from torchlab.tasks.run import Run, RunResult

MIRROR_EPOCHS = 3  # the no-flip net that measures a data set's mirror (find_mirror) trains this long
GENERATION_PROGRESS_FROM = 5000  # synthetic faces (about 20 s on a 2-core CPU); fewer are drawn without progress
NORMALIZATION = {
    "divide_by": PIXEL_SCALE,
    "input": "96x96 gray levels 0..255",
    "output": "pixels, pixel j centered at x = j",
}  # what a checkpoint's model takes and gives


def make_model(model_name: str, cfg: KeypointConfig, mean: list[float]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model, its constructor arguments), its output started at the mean keypoints `mean` when cfg.mean_init."""
    model_kwargs = cfg.model_kwargs(mean)
    model = build_model(model_name, **model_kwargs)
    if cfg.mean_init and hasattr(model, "fc3"):
        with torch.no_grad():  # start the seed architectures at the mean face, too
            cast(torch.nn.Linear, model.fc3).bias.copy_(torch.tensor(mean))
    return model, model_kwargs


def make_augment(cfg: KeypointConfig) -> KeypointAugment | None:
    """The training faces' augmentation (each transform's strength from cfg), None with augment=False."""
    if not cfg.augment:
        return None
    return KeypointAugment(
        flip=cfg.flip,
        flip_sum=cfg.mirror_sum(),
        degrees=cfg.degrees,
        scale=cfg.scale,
        shift=cfg.shift,
        brightness=cfg.brightness,
        contrast=cfg.contrast,
    )


def uses_mirror(cfg: KeypointConfig) -> bool:
    """Whether the run flips faces: augmentation's flips, or the net's flip averaging (keypoint-net)."""
    return (cfg.augment and cfg.flip > 0) or bool(getattr(cfg, "flip_average", False))


def find_mirror(
    model_name: str,
    cfg: KeypointConfig,
    train_t: tuple[torch.Tensor, ...],
    mean: list[float],
    device: torch.device,
    seed: int,
    recorded: Mirror | None = None,
    measure: bool = True,
) -> Mirror:
    """The flip's constant for this run (tasks/keypoints/mirror.py): --flip-sum; 95 for synthetic faces (drawn
    pixel-centered); what a resumed run's last.pt recorded; else measured on the training faces by a copy of the
    run's net trained MIRROR_EPOCHS epochs without flips (95 when that cannot measure it, or no face is flipped)."""
    if cfg.flip_sum is not None:
        return Mirror(cfg.flip_sum, "set by --flip-sum")
    if not cfg.data:
        return Mirror(FLIP_SUM, "geometric: synthetic faces are drawn pixel-centered")
    if recorded is not None:
        return recorded
    if not uses_mirror(cfg):
        return Mirror(FLIP_SUM, "geometric: this run flips no face")
    if not measure:
        return Mirror(FLIP_SUM, "geometric: not measured in a dry run")
    epochs = min(MIRROR_EPOCHS, cfg.epochs)
    fixed: dict[str, Any] = {"flip": 0.0, "flip_sum": FLIP_SUM, "epochs": epochs}
    if hasattr(cfg, "flip_average"):
        fixed["flip_average"] = False
    no_flips = dataclasses.replace(cfg, **fixed)
    with torch.random.fork_rng(devices=[]):  # the run itself draws what it would have drawn without this
        torch.manual_seed(seed)
        model, _ = make_model(model_name, no_flips, mean)
        model.to(device)
        batches = TensorBatcher(
            train_t, cfg.batch_size, shuffle=True, device=device, transform=make_augment(no_flips), seed=seed
        )
        optimizer, scheduler, interval = make_optimizer(model, no_flips, len(batches))
        Trainer(
            model,
            masked_mse,
            optimizer,
            epochs=epochs,
            scheduler=scheduler,
            scheduler_interval=interval,
            device=device,
            grad_clip=no_flips.grad_clip,
            progress=False,
        ).fit(batches)
    measured = measure_mirror(model, *train_t)
    if measured is not None and distributed.current().world_size > 1:  # every rank flips with one value
        measured = float(
            distributed.all_reduce_sum(torch.tensor([measured], device=device)).item()
            / distributed.current().world_size
        )
    low, high = PLAUSIBLE
    if measured is None or not low <= measured <= high:
        found = "too few labeled keypoints" if measured is None else f"{measured:.2f}, outside {low:g}..{high:g}"
        return Mirror(FLIP_SUM, f"geometric: the training faces gave no measurement ({found})")
    return Mirror(
        round(measured, 2),
        f"measured on the {len(train_t[0])} training faces by the net after {epochs} epochs without flips",
    )


def data_meta(cfg: KeypointConfig, split: KeypointSplit) -> dict[str, Any]:
    """Where the faces came from and how they were split (kept in the checkpoint, so evaluate finds them)."""
    return {
        "csv": str(Path(cfg.data).resolve()) if cfg.data else None,
        "synthetic": None if cfg.data else cfg.synthetic,
        "synthetic_seed": SYNTHETIC_SEED,
        "missing": cfg.missing,
        "train_rows": len(split.train),
        "val_rows": len(split.val),
    }


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
    recorded = read_recorded_mirror(run.out / "last.pt") if run.resume else None
    mirror = find_mirror(model_name, cfg, train_t, mean, run.device, run.seed, recorded, measure=not run.dry_run)
    cfg = dataclasses.replace(cfg, flip_sum=mirror.flip_sum)  # the flip, flip averaging and the checkpoint use it
    model, model_kwargs = make_model(model_name, cfg, mean)
    transform = make_augment(cfg)
    batches = TensorBatcher(
        train_t, cfg.batch_size, shuffle=True, device=run.device, transform=transform, seed=run.seed
    )
    val = TensorBatcher(val_t, 256, device=run.device)
    optimizer, scheduler, interval = make_optimizer(model, cfg, len(batches))
    data = data_meta(cfg, split)
    trainer = run.trainer(
        model,
        masked_mse,
        optimizer,
        metrics={"rmse": RMSE()},
        monitor="val_rmse",
        mode="min",
        scheduler=scheduler,
        scheduler_interval=interval,
        meta={
            "model_name": model_name,
            "model_kwargs": model_kwargs,
            "normalization": NORMALIZATION,
            "keypoint_names": list(KEYPOINT_NAMES),
            "flip_sum": mirror.flip_sum,
            "mirror": mirror.how,
            "augment": cfg.augment,
            "data": data,
        },
    )
    fit = trainer.fit(batches, val, resume=run.resume)
    pred = predict_outputs(model, val_t[0], 256).numpy()
    rmse = masked_rmse(pred, val_t[1], val_t[2])
    per_kp = per_keypoint_rmse(pred, val_t[1].numpy(), val_t[2].numpy())
    summary: dict[str, Any] = {
        "task": run.task,
        "model": model_name,
        "recipe": run.recipe,
        "device": str(run.device),
        "data": data["csv"] or f"synthetic faces ({cfg.synthetic})",
        "missing": cfg.missing,
        "augment": cfg.augment,
        "mirror": mirror.describe(),
        "train_rows": len(split.train),
        "val_rows": len(split.val),
        "epochs": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "fit_seconds": round(fit.fit_seconds, 2),
        "val_rmse_px": round(rmse, 4),
        "baseline_rmse_px": round(baseline, 4),
        "worst_keypoint": f"{KEYPOINT_NAMES[int(np.nanargmax(per_kp))]} ({np.nanmax(per_kp):.3f} px)",
        "checkpoint": str(run.out / "best.pt"),
    }
    figures: list[Path] = []
    if run.is_main:
        add_metrics(
            run.out / "best.pt",
            {
                "val_rmse_px": rmse,
                "baseline_rmse_px": baseline,
                **{f"rmse_{n}": float(v) for n, v in zip(KEYPOINT_NAMES, per_kp)},
            },
        )
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
