"""The files a Trainer leaves in its checkpoint folder (last.pt, best.pt, history.csv) and what goes in them."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchlab.engine.checkpoint import save_checkpoint
from torchlab.runtime.device import rng_state
from torchlab.runtime.files import atomic_write_text

if TYPE_CHECKING:
    from torchlab.engine.trainer import Trainer


@dataclass(frozen=True)
class CheckpointWriter:
    """Write the checkpoint after every `every`-th epoch of `epochs`, after the last one and after an early stop.

    `every` = 0 writes nothing. With `every` > 1, best.pt is written only at a writing epoch that
    improved; the best weights in between stay in memory (restore_best_weights).
    """

    folder: Path
    every: int
    epochs: int

    def due(self, epoch: int, stopping: bool) -> bool:
        """Whether the state after `epoch` (0-based) is written; `stopping`: early stopping ends the run there."""
        if not self.every:
            return False
        return (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs or stopping

    def write(self, checkpoint: dict[str, Any], history: list[dict[str, float]], improved: bool) -> None:
        """last.pt (and best.pt when `improved`) in one write and fsync, then history.csv."""
        # best.pt is renamed into place before last.pt, so a crash between the two leaves
        # last.pt one epoch behind, never ahead of best.pt.
        more = [self.folder / "best.pt"] if improved else []
        save_checkpoint(checkpoint, self.folder / "last.pt", *more)
        # history.csv is a readable copy of last.pt's history: atomic, but not worth an fsync of its own
        write_history_csv(history, self.folder / "history.csv", durable=False)


def write_history_csv(history: list[dict[str, float]], path: str | os.PathLike, durable: bool = True) -> None:
    """One row per epoch, one column per quantity, written atomically."""
    if not history:
        return
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue(), durable=durable)


def assemble(trainer: Trainer, epoch: int) -> dict[str, Any]:
    """The checkpoint of `trainer`'s state after `epoch` (0-based) finished: the weights (the moving
    average under `ema`, the training weights kept beside them), the history and metrics, early
    stopping, optimizer, scheduler and RNG states: all a resume needs, and what inference reads."""
    es, average = trainer.early_stopping, trainer.average
    with trainer.averaged_weights():
        return trainer.checkpoint_meta.checkpoint(
            trainer.model,
            epoch=epoch + 1,
            epochs=trainer.epochs,
            history=list(trainer.history),
            metrics=dict(trainer.history[-1]) if trainer.history else {},
            best={"monitor": es.monitor, "mode": es.mode, "value": es.best, "epoch": es.best_epoch + 1},
            early_stopping=es.state_dict(),
            optimizer=trainer.optimizer.state_dict(),
            scheduler=trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
            rng=rng_state(),
            world_size=trainer.world.world_size,
            **({"ema": average.state_dict(trainer.model)} if average is not None else {}),
        )
