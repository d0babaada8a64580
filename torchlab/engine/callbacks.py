"""Callbacks: your code at the Trainer's named points, the seam every optional reporter uses.

    class PrintBest(torchlab.Callback):
        def on_epoch_end(self, trainer, row):
            print(row["epoch"], row.get("val_loss"))

    torchlab.train("digits", callbacks=[PrintBest()])        # or Trainer(..., callbacks=[PrintBest()])

`Trainer.fit` calls, in this order: `on_fit_start` once; per epoch `on_epoch_start`, then per
batch `on_batch_end` (and `on_step_end` after each optimizer step, before the schedule steps),
`on_validation_start`, and `on_epoch_end` once the epoch's row is in the history and its
checkpoint written; finally `on_fit_end` with what `fit` returns (None when an exception ended
the run). An exception raised by a callback ends `fit` there and what was written stays (a
search prunes a trial this way). The progress bar and TensorBoard are callbacks too
(torchlab/reporting/). A plain function `f(trainer, row)` is taken as an `on_epoch_end`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from torchlab.engine.result import FitResult
    from torchlab.engine.trainer import Trainer


class Callback:
    """Override the methods you need; each does nothing by default."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (after a resume has restored the run)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int, batches: int | None, done: int) -> None:
        """Epoch `epoch` (0-based) of `batches` batches (None: unknown) begins, `done` of them already trained."""

    def on_batch_end(self, trainer: Trainer, loss: torch.Tensor) -> None:
        """After a training batch; `loss` is still on the device (reading it waits for the device)."""

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        """After optimizer step `step` (1-based, counted from the run's first epoch)."""

    def on_validation_start(self, trainer: Trainer) -> None:
        """The training batches are done and the validation batches begin."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        """After the epoch's history row (`row`) is recorded and its checkpoint written."""

    def on_fit_end(self, trainer: Trainer, result: FitResult | None) -> None:
        """At the end of `fit`, with what it returns; None when an exception ended the run."""


class EpochFunction(Callback):
    """A plain `f(trainer, row)` as a callback's `on_epoch_end`."""

    def __init__(self, function: Callable[[Any, dict[str, float]], None]) -> None:
        self.function = function

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        self.function(trainer, row)


def as_callbacks(items: Iterable[Callback | Callable[..., None]]) -> list[Callback]:
    """Callbacks as given, plain functions wrapped as EpochFunction."""
    return [item if isinstance(item, Callback) else EpochFunction(item) for item in items]


class Events:
    """The callbacks of one `fit`, each event sent to all of them in order."""

    def __init__(self, callbacks: Iterable[Callback | Callable[..., None]] = ()) -> None:
        self.callbacks = as_callbacks(callbacks)

    def fit_start(self, trainer: Trainer) -> None:
        for callback in self.callbacks:
            callback.on_fit_start(trainer)

    def epoch_start(self, trainer: Trainer, epoch: int, batches: int | None, done: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_start(trainer, epoch, batches, done)

    def batch_end(self, trainer: Trainer, loss: torch.Tensor) -> None:
        for callback in self.callbacks:
            callback.on_batch_end(trainer, loss)

    def step_end(self, trainer: Trainer, step: int) -> None:
        for callback in self.callbacks:
            callback.on_step_end(trainer, step)

    def validation_start(self, trainer: Trainer) -> None:
        for callback in self.callbacks:
            callback.on_validation_start(trainer)

    def epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(trainer, row)

    def fit_end(self, trainer: Trainer, result: FitResult | None) -> None:
        for callback in self.callbacks:
            callback.on_fit_end(trainer, result)
