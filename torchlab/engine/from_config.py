"""A Trainer and its early stopping from a config: the one place config fields reach the loop.

    trainer = Trainer.from_config(cfg, model, loss_fn, optimizer, metrics={"accuracy": Accuracy()},
                                  monitor="val_loss", checkpoint_dir="runs/mine", device=device)

The tasks (through their Run) and the scripts in scripts/ build their Trainer this way, so no
script can leave out a field the command line honors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import nn

from torchlab.config import TrainConfig
from torchlab.engine.early_stopping import EarlyStopping
from torchlab.engine.metrics import Metric

if TYPE_CHECKING:
    from torchlab.engine.trainer import LossFn, Trainer

# The config fields this module hands on: to the Trainer, and to its EarlyStopping (EarlyStopping.from_config).
TRAINER_FIELDS = ("epochs", "grad_clip", "amp", "channels_last", "compile", "accumulate", "max_time", "ema")
STOPPING_FIELDS = (
    "patience",
    "min_delta",
    "baseline",
    "start_from_epoch",
    "stopping_threshold",
    "divergence_threshold",
    "check_finite",
)


def trainer_from_config(
    trainer_class: type[Trainer],
    cfg: TrainConfig,
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: Any,
    *,
    metrics: Mapping[str, Metric] | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
    restore_best: bool = True,
    **options: Any,
) -> Trainer:
    """`trainer_class` with every field of TRAINER_FIELDS and STOPPING_FIELDS taken from `cfg`.

    monitor, mode, restore_best: what early stopping watches, and whether `fit` ends with the best
    weights. options: the Trainer's other arguments (scheduler, checkpoint_dir, device, progress, ...).
    """
    early = EarlyStopping.from_config(cfg, monitor, mode, restore_best_weights=restore_best)
    fields = {name: getattr(cfg, name) for name in TRAINER_FIELDS}
    return trainer_class(
        model=model,
        loss_fn=loss_fn,
        optimizer=optimizer,
        metrics=dict(metrics or {}),
        early_stopping=early,
        **fields,
        **options,
    )


def check_arguments(scheduler_interval: str, accumulate: int, checkpoint_every: int) -> None:
    """A ValueError for a Trainer argument no run can use."""
    if scheduler_interval not in ("epoch", "batch"):
        raise ValueError("scheduler_interval must be 'epoch' or 'batch'")
    if not isinstance(accumulate, int) or isinstance(accumulate, bool) or accumulate < 1:
        raise ValueError(f"accumulate must be a whole number >= 1, got {accumulate!r}")
    if checkpoint_every < 0:
        raise ValueError("checkpoint_every must be >= 0 (0: write checkpoints only when asked)")
