"""TensorBoard logging through `torch.utils.tensorboard` (the optional extra `torchlab[tensorboard]`).

    Trainer(..., tensorboard_dir="checkpoints/digits/tensorboard")   # scalars while training
    log_figures("checkpoints/digits/tensorboard", sorted(out.glob("*.png")), step=20)

Tags: `epoch/<name>` for every history quantity (train_loss, val_accuracy, lr, seconds, ...)
at step = epoch (1-based), `step/lr` for the learning rate of every optimizer step at step =
the step's number (1-based, counted from the first epoch), `figures/<file stem>` for images.
View with `tensorboard --logdir checkpoints`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torchlab.engine.callbacks import Callback
from torchlab.errors import DataError, UsageError

INSTALL_HINT = "TensorBoard logging needs the tensorboard package: pip install torchlab[tensorboard]"


def summary_writer(log_dir: str | os.PathLike) -> Any:
    """A `torch.utils.tensorboard.SummaryWriter` for `log_dir`; a UsageError when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is absent
        raise UsageError(INSTALL_HINT) from None
    return SummaryWriter(log_dir=str(log_dir))


def require_tensorboard() -> None:
    """Fail early, before any training, when the tensorboard package is missing."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None


class TensorBoardLogger:
    """What the Trainer writes: one scalar per history quantity per epoch, the learning rate per step."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.log_dir = Path(log_dir)
        self.writer = summary_writer(self.log_dir)

    def log_step(self, step: int, lr: float) -> None:
        self.writer.add_scalar("step/lr", lr, step)

    def log_epoch(self, row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(f"epoch/{key}", value, epoch)
        self.writer.flush()  # one flush per epoch: a running `tensorboard` sees each epoch as it ends

    def close(self) -> None:
        self.writer.close()


class TensorBoardCallback(Callback):
    """A TensorBoardLogger driven by the Trainer's events: the learning rate per step, the row per epoch."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.logger = TensorBoardLogger(log_dir)

    def on_step_end(self, trainer: Any, step: int) -> None:
        self.logger.log_step(step, trainer.optimizer.param_groups[0]["lr"])

    def on_epoch_end(self, trainer: Any, row: dict[str, float]) -> None:
        self.logger.log_epoch(row)

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        self.logger.close()


def log_figures(log_dir: str | os.PathLike, paths: Iterable[str | os.PathLike], step: int = 0) -> list[str]:
    """Add PNG figures to the TensorBoard run in `log_dir` as images tagged `figures/<stem>`; returns the tags."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    files = [Path(p) for p in paths]
    images = []
    for path in files:  # read every figure before writing anything
        try:
            with Image.open(path) as image:
                images.append((f"figures/{path.stem}", np.asarray(image.convert("RGB"))))
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read the figure {path} ({exc}); give PNG files") from None
    writer = summary_writer(log_dir)
    try:
        for tag, pixels in images:
            writer.add_image(tag, pixels, step, dataformats="HWC")
    finally:
        writer.close()
    return [tag for tag, _ in images]
