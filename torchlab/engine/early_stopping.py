"""Early stopping with Keras/Lightning semantics: monitor, mode, patience, min_delta, restore best."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class EarlyStopping:
    """Track the best value of `monitor` and say when training should stop.

    An epoch improves when the value beats the best by more than `min_delta` (lower for
    mode "min", higher for mode "max"). After `patience` epochs in a row without
    improvement, `should_stop` turns True. `patience=None` never stops (best tracking only).
    """

    monitor: str = "val_loss"
    mode: str = "min"
    patience: int | None = 10
    min_delta: float = 0.0
    restore_best_weights: bool = True
    best: float = field(default=math.nan, init=False)
    best_epoch: int = field(default=-1, init=False)
    wait: int = field(default=0, init=False)
    stopped_epoch: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")

    def improves(self, value: float) -> bool:
        if math.isnan(self.best):
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        """Record one epoch's value; return True when it is a new best."""
        if self.improves(value):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            return True
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_epoch = epoch
        return False

    @property
    def should_stop(self) -> bool:
        return self.stopped_epoch is not None

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = state.get("stopped_epoch")
