"""Resume: bring a run back to where its `last.pt` left it, so that 3 epochs and a resume of 3 more
train exactly like 6 in one go (the weights bit for bit on the CPU).

`restore` loads the weights, the optimizer, the scheduler (a per-batch one is replayed for this
run's steps per epoch instead), early stopping and the RNG states, and returns the epochs done,
their history and the best weights so far (from best.pt). It also deletes the temporary files a
killed writer left behind.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.engine.checkpoint import load_state_into, read_checkpoint
from torchlab.engine.early_stopping import EarlyStopping
from torchlab.errors import CheckpointError
from torchlab.runtime.device import set_rng_state


@dataclass
class Resumed:
    """Where a resumed run starts: the epochs already done, their history, the best weights so far."""

    epoch: int
    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor] | None


def resume_path(resume: bool | str | os.PathLike, checkpoint_dir: Path | None) -> Path:
    """The file `fit(resume=...)` continues from: True means `<checkpoint_dir>/last.pt`."""
    if resume is not True:
        return Path(resume)
    if checkpoint_dir is None:
        raise CheckpointError("resume needs a checkpoint folder (--out) that holds last.pt")
    return checkpoint_dir / "last.pt"


def restore(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            early_stopping: EarlyStopping, per_batch: bool, steps_per_epoch: int | None, epochs: int,
            device: torch.device, clean_up: bool) -> Resumed:
    """Load the training state in `path` into these objects (scheduler None: none); see the module docstring.

    per_batch: the scheduler steps once per batch, so it is replayed for `steps_per_epoch` (this run's
    batches per epoch; None: unknown, and such a run cannot resume) instead of loaded.
    epochs: the run's epochs (a replay stops there). device: where the tensors are read to.
    clean_up: delete stale temporary files (rank 0 does).
    """
    checkpoint = read_checkpoint(path, map_location=device)
    if "optimizer" not in checkpoint or "epoch" not in checkpoint:
        raise CheckpointError(f"{path} holds no training state (optimizer, epoch); it cannot be resumed")
    load_state_into(model, checkpoint["state_dict"], source=str(path))
    epoch = int(checkpoint["epoch"])
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and per_batch:
            # Steps per epoch depend on the number of ranks, and --epochs may have grown:
            # replay this run's schedule instead of loading the old one.
            if steps_per_epoch is None:
                raise CheckpointError(f"cannot resume from {path} with a per-batch learning-rate schedule: "
                                      "the training batches have no length, so the schedule cannot be replayed")
            _replay_schedule(scheduler, optimizer, min(epoch, epochs) * steps_per_epoch)
        elif scheduler is not None and checkpoint.get("scheduler") is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} has optimizer state that does not fit this run ({exc})") from None
    if checkpoint.get("early_stopping"):
        early_stopping.load_state_dict(checkpoint["early_stopping"])
    if checkpoint.get("rng"):
        set_rng_state(checkpoint["rng"])
    if clean_up:
        remove_stale_temp_files(path.parent)
    best_state = None
    best_path = path.parent / "best.pt"
    if early_stopping.restore_best_weights and best_path.exists():
        best_state = read_checkpoint(best_path, map_location=device)["state_dict"]
    return Resumed(epoch, list(checkpoint.get("history", [])), best_state)


def _replay_schedule(scheduler: Any, optimizer: torch.optim.Optimizer, steps: int) -> None:
    """Step a fresh per-batch scheduler `steps` times from its first value (past --epochs: nothing left to run)."""
    for group in optimizer.param_groups:  # restart from the schedule's first value, then replay
        group["lr"] = group.get("initial_lr", group["lr"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(steps):
            scheduler.step()


def remove_stale_temp_files(folder: Path) -> None:
    """Delete temporary files a killed writer left behind (`.last.pt.XXXX.tmp`); they are never read."""
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
