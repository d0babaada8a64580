"""The optimizer and learning-rate schedule a config asks for (its `optimizer` and `schedule` fields)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchlab.config import TrainConfig


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, batches_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None, str]:
    """(optimizer, scheduler or None, scheduler interval) from the config's optimizer and schedule fields.

    onecycle and cosine step once per optimizer step ("batch" interval) over the run's steps:
    `epochs` x the steps of an epoch, one per `cfg.accumulate` of its `batches_per_epoch` batches.
    """
    kinds = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    options = {}
    if cfg.optimizer in ("adam", "adamw") and not torch.backends.mps.is_available():
        # One fused kernel per step instead of a loop over the parameters (CPU and CUDA): on the CPU
        # it takes AdamW from about 550 to 140 us a step for mnist-cnn (BENCHMARKS.md).
        options["fused"] = True
    optimizer = kinds[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **options)
    steps_per_epoch = -(-max(1, batches_per_epoch) // cfg.accumulate)  # and one for a short last window
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle" and total >= 3:
        # OneCycleLR needs at least one step in each phase; very short runs get a longer warm-up share.
        warmup = min(max(cfg.warmup, 1.5 / total), (total - 1.5) / total)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=warmup)
        return optimizer, scheduler, "batch"
    if cfg.schedule == "onecycle":  # one or two steps in all: no room for a cycle, keep the peak rate
        return optimizer, None, "epoch"
    if cfg.schedule == "cosine":
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), "batch"
    return optimizer, None, "epoch"


def step_epoch_scheduler(scheduler: Any, monitored: float) -> None:
    """Step a once-an-epoch scheduler; ReduceLROnPlateau reads the epoch's `monitored` value."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    else:
        scheduler.step()
