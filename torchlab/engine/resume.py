"""Resume: bring a run back to where its `last.pt` left it, so that 3 epochs and a resume of 3 more
train exactly like 6 in one go (the weights bit for bit on the CPU).

`restore` loads the weights, the optimizer, the scheduler (a per-batch one is replayed for this
run's optimizer steps per epoch instead), early stopping and the RNG states, and returns the epochs
done, their history and the best weights so far (from best.pt). It also deletes the temporary files
a killed writer left behind.

A run its time budget stopped part-way through an epoch (`max_time`) goes on from that very batch:
its last.pt holds an `Interruption` (the batches done, their sums, the RNG states) and, when that
stop wrote its weights to best.pt over the run's best, the best.pt it replaced, which is put back,
so that the resumed run ends exactly like one that was never stopped.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from torchlab.engine.batches import length
from torchlab.engine.checkpoint import load_state_into, read_checkpoint, save_checkpoint
from torchlab.engine.early_stopping import EarlyStopping
from torchlab.engine.totals import Totals
from torchlab.errors import CheckpointError
from torchlab.runtime.device import rng_state, set_rng_state

if TYPE_CHECKING:
    from torchlab.engine.trainer import Trainer


@dataclass
class Interruption:
    """Where a time budget stopped an epoch part-way: what it takes to go on from the next batch."""

    epoch: int  # the epoch cut short (0-based)
    batches: int  # its batches already trained (a whole number of optimizer steps)
    batches_per_epoch: int | None
    accumulate: int  # batches per optimizer step
    totals: list[float]  # the sums over those batches (Totals.state)
    epoch_rng: dict[str, Any]  # the RNG states as the epoch began (a DataLoader's iterator draws from them)
    rng: dict[str, Any]  # the RNG states after those batches

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Interruption:
        return cls(**{name: state[name] for name in cls.__dataclass_fields__})


@dataclass
class Resumed:
    """Where a resumed run starts: the epochs already done, their history, the best weights so far,
    and the interrupted epoch's position when the time budget stopped the run part-way through one."""

    epoch: int
    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor] | None
    interruption: Interruption | None = None
    ema: dict[str, Any] | None = None  # a run with a weight average: its decay, updates and training weights


def resume_path(resume: bool | str | os.PathLike, checkpoint_dir: Path | None) -> Path:
    """The file `fit(resume=...)` continues from: True means `<checkpoint_dir>/last.pt`."""
    if not isinstance(resume, bool):
        return Path(resume)
    if checkpoint_dir is None:
        raise CheckpointError("resume needs a checkpoint folder (--out) that holds last.pt")
    return checkpoint_dir / "last.pt"


def restore(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    early_stopping: EarlyStopping,
    per_batch: bool,
    batches_per_epoch: int | None,
    accumulate: int,
    epochs: int,
    device: torch.device,
    clean_up: bool,
) -> Resumed:
    """Load the training state in `path` into these objects (scheduler None: none); see the module docstring.

    per_batch: the scheduler steps once per optimizer step, so it is replayed for this run's steps
    (`batches_per_epoch` batches per epoch, None: unknown, and such a run cannot resume; one step per
    `accumulate` batches) instead of loaded. epochs: the run's epochs (a replay stops there).
    device: where the tensors are read to. clean_up: rank 0 tidies the folder: deletes stale
    temporary files and puts back the best.pt a time-budget stop replaced.
    """
    checkpoint = read_checkpoint(path, map_location=device)
    if "optimizer" not in checkpoint or "epoch" not in checkpoint:
        raise CheckpointError(f"{path} holds no training state (optimizer, epoch); it cannot be resumed")
    check_finite_training_state(checkpoint, path)
    stopped = checkpoint.get("interrupted")
    point = Interruption.from_dict(stopped) if stopped else None
    if point is not None and (point.batches_per_epoch, point.accumulate) != (batches_per_epoch, accumulate):
        raise CheckpointError(
            f"{path} was stopped by its time budget after {point.batches} of the {point.batches_per_epoch} batches "
            f"of epoch {point.epoch + 1} (one optimizer step per {point.accumulate}), but this run has "
            f"{batches_per_epoch} batches an epoch (one step per {accumulate}); resume with the same batch size, "
            "accumulation and number of processes"
        )
    load_state_into(model, checkpoint["state_dict"], source=str(path))
    epoch = int(checkpoint["epoch"])
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and per_batch:
            # Steps per epoch depend on the number of ranks, and --epochs may have grown:
            # replay this run's schedule instead of loading the old one.
            if batches_per_epoch is None:
                raise CheckpointError(
                    f"cannot resume from {path} with a per-batch learning-rate schedule: "
                    "the training batches have no length, so the schedule cannot be replayed"
                )
            steps = min(epoch, epochs) * -(-batches_per_epoch // accumulate)
            if point is not None and point.epoch < epochs:
                steps += point.batches // accumulate
            _replay_schedule(scheduler, optimizer, steps)
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
    best_path = path.parent / "best.pt"
    # No epoch has counted yet (the start_from_epoch warm-up): best.pt holds the last weights, no best.
    no_best = bool(checkpoint.get("early_stopping")) and early_stopping.best_epoch < 0
    best_state = None
    if stopped and stopped.get("best_written") and not no_best:
        # The budget's stop wrote its weights to best.pt over the run's best: the best goes back in place.
        replaced = stopped.get("replaced_best")
        if replaced is not None:
            replaced = {**replaced, "state_dict": {k: v.cpu() for k, v in replaced["state_dict"].items()}}
            best_state = replaced["state_dict"]
        if clean_up and replaced is not None:
            save_checkpoint(replaced, best_path)
        elif clean_up:
            best_path.unlink(missing_ok=True)
    elif best_path.exists() and not no_best and early_stopping.restore_best_weights:
        best_state = read_checkpoint(best_path, map_location=device)["state_dict"]
    if not early_stopping.restore_best_weights:
        best_state = None
    return Resumed(epoch, list(checkpoint.get("history", [])), best_state, point, checkpoint.get("ema"))


def resume_trainer(trainer: Trainer, resume: bool | str | os.PathLike, batches: Iterable[Any]) -> None:
    """Bring `trainer` back to the state in `resume` (True: its checkpoint_dir's last.pt), before `fit` trains."""
    resumed = restore(
        resume_path(resume, trainer.checkpoint_dir),
        model=trainer.model,
        optimizer=trainer.optimizer,
        scheduler=trainer.scheduler,
        early_stopping=trainer.early_stopping,
        per_batch=trainer.scheduler_interval == "batch",
        batches_per_epoch=length(batches),
        accumulate=trainer.accumulate,
        epochs=trainer.epochs,
        device=trainer.device,
        clean_up=trainer.world.is_main and not trainer.dry_run,
    )
    trainer.start_epoch, trainer.history, trainer.best_state = resumed.epoch, resumed.history, resumed.best_state
    if resumed.ema is not None and trainer.average is not None:  # the file's weights are the average
        trainer.average.load(trainer.model, resumed.ema)
    elif resumed.ema is not None:  # a run that averaged goes on without: from its training weights
        trainer.model.load_state_dict(resumed.ema["training_weights"])
    trainer.resume_point = resumed.interruption


def enter_epoch(
    point: Interruption | None, epoch: int, batches: Iterable[Any], totals: Totals, is_main: bool, keep_epoch_rng: bool
) -> tuple[Iterator[Any], int, dict[str, Any] | None]:
    """Start epoch `epoch`'s batches: from the first, or, when the time budget stopped this very epoch
    (`point`), from the batch after the stop, with the RNG states and the sums as they were then.

    Returns (the batches' iterator, the batches already trained, the RNG states as the epoch began,
    kept when `keep_epoch_rng` because a budget may stop this epoch too).
    """
    if point is not None and point.epoch != epoch:
        point = None
    if point is not None:
        set_rng_state(point.epoch_rng)
    epoch_rng = rng_state() if keep_epoch_rng else None  # before the iterator draws from it
    iterator = iter(batches)
    if point is None:
        return iterator, 0, epoch_rng
    for _ in range(point.batches):  # the batches trained before the stop
        next(iterator)
    if is_main:  # the sums of all ranks, counted once
        totals.load(point.totals)
    set_rng_state(point.rng)
    return iterator, point.batches, epoch_rng


def check_finite_training_state(checkpoint: dict[str, Any], path: Path) -> None:
    """A CheckpointError when the weights or the optimizer state hold NaN or infinite values: training on from
    them gives NaN losses at once (and the message would blame the learning rate)."""
    parts = (
        ("weights", _tensors(checkpoint["state_dict"], "")),
        ("optimizer state", _tensors(checkpoint["optimizer"], "")),
    )
    for what, tensors in parts:
        for name, tensor in tensors:
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                bad = int((~torch.isfinite(tensor)).sum())
                raise CheckpointError(
                    f"{path} holds non-finite {what} ({bad:,} NaN or infinite values in "
                    f"{name.lstrip('.')}), so it cannot be resumed: training from it gives NaN "
                    "losses; resume from an earlier copy of last.pt or start a new run"
                )


def _tensors(value: Any, name: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) for every tensor in nested dicts and lists."""
    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{name}.{index}")


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
