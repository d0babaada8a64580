"""What a person sees while the Trainer runs: a per-batch bar in a terminal, plain lines elsewhere.

    progress = EpochProgress.create(setting, epochs=10, stream=sys.stderr)   # None when silent
    progress.start_epoch(epoch, total_batches)   # a fresh bar: "epoch 3/10  45%|███  | 20/45 [00:02<00:03, ...]"
    progress.step(loss)                          # every batch; reads the loss from the device at most twice a second
    progress.validating()                        # while the validation batches run
    progress.end_epoch(row)                      # the bar gives way to one kept line with the epoch's metrics

Where the output goes decides what it looks like: a terminal gets live bars, anything else (a
file, a pipe, a CI log, `nohup`) gets one plain line per epoch and no carriage returns. All
output goes to the one stream (stderr by default), through tqdm so that lines and bars never
tear each other.
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Any, TextIO

import torch
from tqdm import tqdm

from torchlab.engine.callbacks import Callback

LOSS_EVERY_SECONDS = 0.5  # how often the bar reads the current loss off the device (one host sync)


def mode(setting: bool | None, stream: TextIO) -> str | None:
    """'bars', 'lines' or None (silent) for the Trainer's `progress` setting and the output stream.

    None (auto): bars when the stream is a terminal, silent otherwise (a library call in a script
    or a test prints nothing). True: bars on a terminal, plain lines otherwise. False: silent.
    """
    if setting is False:
        return None
    if _is_terminal(stream):
        return "bars"
    return "lines" if setting else None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return 0


def summary(row: dict[str, float]) -> str:
    """An epoch's losses and validation metrics, e.g. 'train_loss=0.1234 val_loss=0.2 val_accuracy=0.95'."""
    keys = ["train_loss"] + [k for k in row if k.startswith("val_")]
    return " ".join(f"{k}={row[k]:.4g}" for k in keys if k in row)


class EpochProgress:
    """One bar per epoch (or one plain line per epoch); see the module docstring."""

    def __init__(self, style: str, epochs: int, stream: TextIO) -> None:
        self.style = style
        self.epochs = epochs
        self.stream = stream
        self.bar: tqdm | None = None
        self.epoch = 0
        self.batches = 0
        self._next_loss_read = 0.0

    @classmethod
    def create(cls, setting: bool | None, epochs: int, stream: TextIO | None = None) -> EpochProgress | None:
        """The reporter for this setting and stream (default: the current sys.stderr), or None when silent."""
        stream = sys.stderr if stream is None else stream
        style = mode(setting, stream)
        return None if style is None else cls(style, epochs, stream)

    def _label(self) -> str:
        width = len(str(self.epochs))
        return f"epoch {self.epoch + 1:>{width}}/{self.epochs}"

    def start_epoch(self, epoch: int, total_batches: int | None, done: int = 0) -> None:
        """Epoch `epoch` (0-based) begins; `total_batches` is None when the batches have no length.

        done: batches trained before (a run resumed part-way through the epoch); the bar starts there.
        """
        self.epoch = epoch
        self.batches = done
        if self.style == "bars":
            # a terminal that reports no size (0x0, as under `script` or `docker -t`) hides tqdm's bar
            size = {} if _terminal_width(self.stream) else {"ncols": 100, "nrows": 24}
            self.bar = tqdm(
                total=total_batches,
                initial=done,
                desc=self._label(),
                unit="batch",
                file=self.stream,
                dynamic_ncols=not size,
                leave=False,
                **size,
            )
            self._next_loss_read = time.monotonic() + LOSS_EVERY_SECONDS

    def step(self, loss: torch.Tensor) -> None:
        """One training batch done; `loss` stays on the device except when the bar shows it."""
        self.batches += 1
        bar = self.bar
        if bar is None:
            return
        bar.update(1)
        now = time.monotonic()
        if now >= self._next_loss_read:
            self._next_loss_read = now + LOSS_EVERY_SECONDS
            bar.set_postfix_str(f"loss={loss.item():.4g}", refresh=True)

    def validating(self) -> None:
        """The training batches are done and the validation batches are running."""
        if self.bar is not None:
            self.bar.set_postfix_str("validating", refresh=True)

    def end_epoch(self, row: dict[str, float]) -> None:
        """Replace the bar by one kept line: epoch, batches, seconds, losses and validation metrics."""
        self.close()
        line = f"{self._label()}  {self.batches} batches  {row.get('seconds', 0.0):.1f}s  {summary(row)}"
        self.write(line)

    def write(self, line: str) -> None:
        """One kept line on the progress stream, above any live bar."""
        tqdm.write(line, file=self.stream)
        self.stream.flush()

    def close(self) -> None:
        """Remove a bar left open by an interrupted epoch."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ProgressCallback(Callback):
    """EpochProgress driven by the Trainer's events (see torchlab/engine/callbacks.py)."""

    def __init__(self, progress: EpochProgress) -> None:
        self.progress = progress

    def on_epoch_start(self, trainer: Any, epoch: int, batches: int | None, done: int) -> None:
        self.progress.start_epoch(epoch, batches, done=done)

    def on_batch_end(self, trainer: Any, loss: torch.Tensor) -> None:
        self.progress.step(loss)  # reads the loss off the device at most twice a second

    def on_validation_start(self, trainer: Any) -> None:
        self.progress.validating()

    def on_epoch_end(self, trainer: Any, row: dict[str, float]) -> None:
        self.progress.end_epoch(row)

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        """An epoch the time budget cut short gets its line too, then why the run stopped."""
        if result is not None and result.partial is not None:
            self.progress.end_epoch(result.partial)
        if result is not None and result.stop_message:
            self.progress.write(result.stop_message)
        self.progress.close()
