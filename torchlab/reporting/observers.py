"""The reporters a Trainer's settings ask for, as callbacks: a progress bar and TensorBoard (rank 0 only)."""

from __future__ import annotations

import os

from torchlab.engine.callbacks import Callback
from torchlab.reporting.progress import EpochProgress, ProgressCallback


def reporters(
    progress: bool | None, epochs: int, tensorboard_dir: str | os.PathLike | None, is_main: bool
) -> list[Callback]:
    """ProgressCallback when `progress` shows anything here, TensorBoardCallback when `tensorboard_dir` is set."""
    if not is_main:
        return []
    found: list[Callback] = []
    bar = EpochProgress.create(progress, epochs)
    if bar is not None:
        found.append(ProgressCallback(bar))
    if tensorboard_dir is not None:
        from torchlab.reporting.tensorboard import TensorBoardCallback

        found.append(TensorBoardCallback(tensorboard_dir))
    return found
