"""Callbacks: your code at the Trainer's named points, the seam every optional reporter uses.

    class PrintBest(torchlab.Callback):
        def on_epoch_end(self, trainer, row):
            print(row["epoch"], row.get("val_loss"))

    torchlab.train("digits", callbacks=[PrintBest()])        # or Trainer(..., callbacks=[PrintBest()])

The Trainer calls, in this order: `on_fit_start(trainer)` once, `on_step_end(trainer, step)` after
every optimizer step (`step` counts them from the run's first epoch), `on_epoch_end(trainer, row)`
after an epoch's row is recorded and its checkpoint written, and `on_fit_end(trainer, result)`
once, also when the run stopped early (not when an exception ended it). An exception raised by a
callback ends `fit` there: what was written stays (a search prunes a trial this way). Progress
bars and TensorBoard are callbacks too (torchlab/reporting/). A plain function `f(trainer, row)`
is taken as an `on_epoch_end`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchlab.engine.trainer import FitResult, Trainer


class Callback:
    """Override the methods you need; each does nothing by default."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (after a resume has restored the run)."""

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        """After optimizer step `step` (1-based, counted from the run's first epoch)."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        """After the epoch's history row (`row`) is recorded and its checkpoint written."""

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        """After the last epoch, with what `fit` returns."""


class EpochFunction(Callback):
    """A plain `f(trainer, row)` as a callback's `on_epoch_end`."""

    def __init__(self, function: Callable[[Any, dict[str, float]], None]) -> None:
        self.function = function

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        self.function(trainer, row)


def as_callbacks(items: Iterable[Callback | Callable[..., None]]) -> list[Callback]:
    """Callbacks as given, plain functions wrapped as EpochFunction."""
    return [item if isinstance(item, Callback) else EpochFunction(item) for item in items]
