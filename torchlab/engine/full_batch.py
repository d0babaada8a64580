"""Running a Trainer on a tiny full-batch problem and saving the result once.

The small tasks (patch, ring) take hundreds or thousands of epochs that each
last well under a millisecond; writing last.pt/best.pt after every one of them would cost
far more than the training. `fit_and_save` trains with `checkpoint_every=0` and
then writes last.pt, best.pt (the same final weights: these runs keep their last weights,
as the seeds' loops do) and history.csv in one go. `--resume` still works from last.pt.

Such models run under `torchlab.runtime.device.one_cpu_thread`: their matrices are so small that
handing work to a second thread costs more than it saves (on a busy 2-core machine a
full-batch step of the 2->16->1 net took 0.8 ms on one thread and 15 ms on two).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from torchlab.engine.checkpoint import make_checkpoint, save_checkpoint
from torchlab.engine.checkpoint_writer import write_history_csv
from torchlab.engine.trainer import Batches, FitResult, Trainer


def fit_and_save(
    trainer: Trainer,
    train: Batches,
    out: Path,
    resume: bool = False,
    evaluate: Callable[[], dict[str, float]] | None = None,
) -> FitResult:
    """trainer.fit(train) without per-epoch files, then last.pt, best.pt and history.csv in `out`.

    `evaluate()`, if given, runs after training; its numbers (e.g. test accuracy) join the
    checkpoint's metrics, so `torchlab.load` reports them.
    """
    trainer.checkpoint_every = 0
    result = trainer.fit(train, resume=(out / "last.pt") if resume else False)
    extra = evaluate() if evaluate is not None else {}
    if trainer.world.is_main and (result.epochs_run or trainer.stop_checkpoint is not None):
        # a time budget that stopped an epoch part-way left that state's checkpoint, which resumes from there
        checkpoint = trainer.stop_checkpoint or trainer.checkpoint(result.epochs_run - 1)
        checkpoint["metrics"].update(extra)
        save_checkpoint(checkpoint, out / "last.pt", out / "best.pt")
        write_history_csv(result.history, out / "history.csv")
    return result


def save_plain(model: nn.Module, out: Path, history: list[dict[str, float]], **meta: Any) -> Path:
    """Checkpoint a model trained outside the Trainer (no optimizer state): best.pt, last.pt, history.csv."""
    checkpoint = make_checkpoint(
        model=model, epoch=len(history), history=history, metrics=dict(history[-1]) if history else {}, **meta
    )
    save_checkpoint(checkpoint, out / "last.pt", out / "best.pt")
    path = out / "best.pt"
    write_history_csv(history, out / "history.csv")
    return path
