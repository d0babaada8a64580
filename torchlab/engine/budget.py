"""The Trainer's time budget (`max_time`): when it is spent, and the checkpoint of a stop inside an epoch.

The run stops at the first optimizer step past the budget, validates there and checkpoints that
state; `fit(resume=True)` then goes on from the next batch as if never stopped (resume.py). Under
torchrun rank 0's clock decides for every rank (one broadcast per optimizer step).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from torchlab.config import duration_seconds
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.engine.checkpoint_writer import CheckpointWriter
from torchlab.engine.finite_loss import check_finite
from torchlab.runtime import distributed

if TYPE_CHECKING:
    from torchlab.engine.trainer import Trainer


class TimeBudget:
    """`seconds` of training per `fit`, measured with `clock` (None: no budget)."""

    def __init__(self, max_time: float | str | None, clock: Callable[[], float], device: torch.device) -> None:
        try:
            self.seconds = duration_seconds(max_time)
        except ValueError:
            raise ValueError(
                f"max_time must be a number of seconds > 0 or a duration such as 90s, 15m or 2h, got {max_time!r}"
            ) from None
        self.clock, self.device, self.started = clock, device, 0.0

    @property
    def active(self) -> bool:
        return self.seconds is not None

    def start(self) -> None:
        self.started = self.clock()

    def spent(self) -> bool:
        """Whether the budget is used up; rank 0's clock decides for every rank (a collective: every rank asks)."""
        if self.seconds is None:
            return False
        return distributed.broadcast_flag(self.clock() - self.started >= self.seconds, self.device)

    def message(self, trainer: Trainer, epoch: int, batches: int | None, count: int | None) -> str:
        """What the summary says when the budget ended the run after `batches` of epoch `epoch` (None: all)."""
        where = f"epoch {epoch + 1} of {trainer.epochs}"
        text = f"time budget of {duration_text(self.seconds or 0.0)} used up "
        if batches is None:
            text += f"after {where}"
        else:
            text += f"in {where}, after {batches} of {count or '?'} batches; validated there"
        if trainer.checkpoint_dir is not None:
            text += f"; {trainer.checkpoint_dir / 'last.pt'} holds this state: resume to go on"
        return text


def checkpoint_the_stop(
    trainer: Trainer, row: dict[str, float], epoch: int, t0: float, writer: CheckpointWriter | None
) -> dict[str, float]:
    """The budget stopped epoch `epoch` part-way and `row` holds its validation: checkpoint that state.

    last.pt gets the weights, the position in the epoch and early stopping as it was before this
    validation (a resumed run then counts the epoch once, when it ends); best.pt gets the weights
    too when they are better than the best, and last.pt keeps the best.pt they replaced, which a
    resume puts back. Returns the row (with the batches trained), which the history leaves out.
    """
    point, es = trainer.interruption, trainer.early_stopping
    assert point is not None
    row["lr"] = trainer.optimizer.param_groups[0]["lr"]
    row["seconds"] = time.perf_counter() - t0
    row["batches"] = point.batches
    check_finite(row, epoch, trainer.checkpoint_dir)
    saved = es.state_dict()  # what a resumed run starts from
    had_best = es.best_epoch >= 0
    probe = copy.copy(es)
    better = probe.update(es.value_in(row), epoch)
    if better:  # this run's result: these weights are its best
        es.best, es.best_epoch = probe.best, probe.best_epoch
        trainer.keep_best()
    if trainer.world.is_main:
        write_best = better or not had_best
        stopped: dict[str, Any] = {**point.as_dict(), "best_written": write_best}
        best_path = trainer.checkpoint_dir / "best.pt" if trainer.checkpoint_dir is not None else None
        if write_best and had_best and best_path is not None and best_path.exists():
            replaced = read_checkpoint(best_path)
            stopped["replaced_best"] = {k: v for k, v in replaced.items() if k != "interrupted"}
        checkpoint = trainer.checkpoint(epoch - 1)  # `epoch` epochs done
        checkpoint.update(metrics=dict(row), early_stopping=saved, rng=point.rng, interrupted=stopped)
        trainer.stop_checkpoint = checkpoint
        if writer is not None and writer.every:
            writer.write(checkpoint, trainer.history, write_best)
    return row


def duration_text(seconds: float) -> str:
    """90.0 -> '1m30s', 7200.0 -> '2h', 2.5 -> '2.5s'."""
    whole, fraction = divmod(seconds, 1)
    if fraction or seconds < 60:
        return f"{seconds:g}s"
    hours, rest = divmod(int(whole), 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
