"""Early stopping with Keras's and Lightning's semantics, one rule set for every task.

Keras (`keras.callbacks.EarlyStopping`): `monitor`, `mode`, `patience`, `min_delta`,
`restore_best_weights`, `baseline`, `start_from_epoch`. Lightning
(`lightning.pytorch.callbacks.EarlyStopping`): `stopping_threshold`, `divergence_threshold`,
`check_finite`. The same object tracks the best epoch, whose weights best.pt holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torchlab.config import TrainConfig


@dataclass
class EarlyStopping:
    """Track the best value of `monitor` and say when training should stop.

    Each epoch's value goes through these rules in order (Lightning's order), the first that
    applies deciding:

    - start_from_epoch (Keras): epochs numbered below it (0-based) are not looked at at all:
      they neither improve, nor count toward patience, nor stop the run.
    - check_finite (Lightning): a NaN or infinite value stops the run at once; it is never the best.
    - stopping_threshold (Lightning): a value strictly better than it (below it for mode "min",
      above it for "max") stops the run at once; the epoch becomes the best when it beats the best
      at all (min_delta does not hold it back), so the weights kept are ones that reached the threshold.
    - divergence_threshold (Lightning): a value strictly worse than it stops the run at once; it is
      never the best.
    - improvement (Keras): a value better than the best by more than `min_delta` is the new best.
      `wait` counts the epochs since the last one that beat both the best and `baseline` (Keras:
      without a baseline, every improvement restarts it); after `patience` such epochs the run
      stops, never at the run's first epoch (Keras's `epoch > 0`). So with a baseline, a run whose
      values never beat it stops after `patience` epochs, keeping the best of them (as Keras
      documents; Keras 3's code checks patience only on epochs that do not improve the best).
      `patience=None` never stops on patience (best tracking only).

    `best_epoch` is -1 until an epoch has been looked at and was finite and not diverged;
    `stop_reason` names the rule that stopped the run: "patience", "stopping_threshold",
    "divergence_threshold" or "not_finite".
    """

    monitor: str = "val_loss"
    mode: str = "min"
    patience: int | None = 10
    min_delta: float = 0.0
    restore_best_weights: bool = True
    baseline: float | None = None
    start_from_epoch: int = 0
    stopping_threshold: float | None = None
    divergence_threshold: float | None = None
    check_finite: bool = True
    best: float = field(default=math.nan, init=False)
    best_epoch: int = field(default=-1, init=False)
    wait: int = field(default=0, init=False)
    stopped_epoch: int | None = field(default=None, init=False)
    stop_reason: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")
        if self.start_from_epoch < 0:
            raise ValueError(f"start_from_epoch must be >= 0, got {self.start_from_epoch}")

    @classmethod
    def from_config(
        cls, cfg: TrainConfig, monitor: str, mode: str = "min", restore_best_weights: bool = True
    ) -> EarlyStopping:
        """The early stopping a TrainConfig's fields ask for (patience, min_delta, baseline, ...) on `monitor`."""
        return cls(
            monitor,
            mode,
            patience=cfg.patience,
            min_delta=cfg.min_delta,
            restore_best_weights=restore_best_weights,
            baseline=cfg.baseline,
            start_from_epoch=cfg.start_from_epoch,
            stopping_threshold=cfg.stopping_threshold,
            divergence_threshold=cfg.divergence_threshold,
            check_finite=cfg.check_finite,
        )

    def _better(self, value: float, reference: float, delta: float = 0.0) -> bool:
        """Whether `value` beats `reference` by more than `delta` in this mode (False for NaN)."""
        if self.mode == "min":
            return value < reference - delta
        return value > reference + delta

    def improves(self, value: float) -> bool:
        """Whether `value` is a new best: better than the best by more than min_delta (the first finite value is)."""
        reference = self.best if not math.isnan(self.best) else (math.inf if self.mode == "min" else -math.inf)
        return self._better(value, reference, self.min_delta)

    def looks_at(self, epoch: int) -> bool:
        """Whether the value of `epoch` (0-based) counts: False during the start_from_epoch warm-up."""
        return epoch >= self.start_from_epoch

    def update(self, value: float, epoch: int) -> bool:
        """Record one epoch's value (see the class docstring); return True when it is a new best."""
        if not self.looks_at(epoch):
            return False
        if self.check_finite and not math.isfinite(value):
            self._stop(epoch, "not_finite")
            return False
        if self.stopping_threshold is not None and self._better(value, self.stopping_threshold):
            improved = math.isnan(self.best) or self._better(value, self.best)  # no min_delta here
            if improved:
                self._record(value, epoch)
            self._stop(epoch, "stopping_threshold")
            return improved
        if self.divergence_threshold is not None and self._better(self.divergence_threshold, value):
            self._stop(epoch, "divergence_threshold")
            return False
        improved = self.improves(value)
        if improved:
            self._record(value, epoch)
        if improved and (self.baseline is None or self._better(value, self.baseline, self.min_delta)):
            self.wait = 0
            return True
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience and epoch > 0:
            self._stop(epoch, "patience")
        return improved

    def _record(self, value: float, epoch: int) -> None:
        self.best, self.best_epoch = float(value), epoch

    def _stop(self, epoch: int, reason: str) -> None:
        self.stopped_epoch, self.stop_reason = epoch, reason

    @property
    def should_stop(self) -> bool:
        return self.stopped_epoch is not None

    def value_in(self, row: dict[str, float]) -> float:
        """The monitored value in an epoch's history row; a ValueError when the row lacks it."""
        if self.monitor not in row:
            raise ValueError(f"early stopping monitors {self.monitor!r}, which is not among {sorted(row)}")
        return row[self.monitor]

    def follow(self, stop: bool, epoch: int) -> None:
        """Adopt rank 0's decision after epoch `epoch` (under torchrun every rank stops together)."""
        if stop != self.should_stop:
            self.stopped_epoch = epoch if stop else None
            self.stop_reason = None

    def stop_message(self, value: float | None = None) -> str:
        """Why the run stopped, in words ('' while it has not); `value`: the monitored value of the stopping epoch."""
        if self.stopped_epoch is None:
            return ""
        epoch = self.stopped_epoch + 1
        best = f"best {self.best:.4g} at epoch {self.best_epoch + 1}" if self.best_epoch >= 0 else "no best epoch"
        shown = f" = {value:.4g}" if value is not None else ""
        word = "below" if self.mode == "min" else "above"
        if self.stop_reason == "not_finite":
            return f"early stopping at epoch {epoch}: {self.monitor}{shown} is not finite ({best})"
        if self.stop_reason == "stopping_threshold":
            return (
                f"early stopping at epoch {epoch}: {self.monitor}{shown} reached the stopping threshold "
                f"({word} {self.stopping_threshold:g}; {best})"
            )
        if self.stop_reason == "divergence_threshold":
            worse = "above" if self.mode == "min" else "below"
            return (
                f"early stopping at epoch {epoch}: {self.monitor}{shown} passed the divergence threshold "
                f"({worse} {self.divergence_threshold:g}; {best})"
            )
        if self.baseline is not None and not (
            self.best_epoch >= 0 and self._better(self.best, self.baseline, self.min_delta)
        ):
            return (
                f"early stopping at epoch {epoch}: {self.monitor} has not beaten the baseline "
                f"{self.baseline:g} in {self.wait} epochs ({best})"
            )
        return (
            f"early stopping: {self.monitor} has not improved since epoch {self.best_epoch + 1} (best {self.best:.4g})"
        )

    def state_dict(self) -> dict:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = state.get("stopped_epoch")
        # older files: a stop was always patience's
        self.stop_reason = state.get("stop_reason", "patience" if self.stopped_epoch is not None else None)
