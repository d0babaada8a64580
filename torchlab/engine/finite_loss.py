"""A loss that became NaN or infinite: the error that ends the run, with advice and the last checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

from torchlab.engine.checkpoint import sound_checkpoint
from torchlab.errors import FieldName, NonFiniteLoss

# What a non-finite loss suggests changing, naming config fields (the CLI writes them --lr, --grad-clip).
SMALLER_STEPS = (
    "try a lower learning rate (",
    FieldName("lr"),
    ") or gradient clipping (",
    FieldName("grad_clip"),
    ")",
)
BAD_VALIDATION_DATA = ("the training loss is finite, so the validation data hold values the model cannot score",)


def check_finite(row: dict[str, float], epoch: int, checkpoint_dir: Path | None) -> None:
    """A NonFiniteLoss when a loss of the epoch's `row` is NaN or infinite (epoch 0-based); it names
    `checkpoint_dir`/last.pt when there is one."""
    bad = [k for k, v in row.items() if k.endswith("loss") and not math.isfinite(v)]
    if not bad:
        return
    last = checkpoint_dir / "last.pt" if checkpoint_dir else None
    only_validation = bad[0].startswith("val_") and math.isfinite(row.get("train_loss", math.nan))
    raise NonFiniteLoss(
        bad[0],
        row[bad[0]],
        epoch + 1,
        row["lr"],
        BAD_VALIDATION_DATA if only_validation else SMALLER_STEPS,
        sound_checkpoint(last),
        checked=True,
    )  # named only when it reads back whole and finite
