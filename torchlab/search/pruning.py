"""The trial's eye on its run: a torchlab.Callback that reports each epoch's validation value to Optuna.

After every epoch (its row recorded, last.pt and history.csv written) the value of the study's
metric goes to `trial.report(value, epoch)`; when the study's pruner says the curve is worse than
the other trials' at that epoch, `optuna.TrialPruned` ends the run there, its files kept.
"""

from __future__ import annotations

import math
from typing import Any

from torchlab.engine.callbacks import Callback
from torchlab.errors import UsageError


class TrialReporter(Callback):
    """Report `metric` to `trial` each epoch and prune when the study's pruner says so."""

    def __init__(self, trial: Any, metric: str, mode: str) -> None:
        self.trial, self.metric, self.mode = trial, metric, mode
        self.values: list[float] = []
        self.pruned_at: int | None = None

    def on_epoch_end(self, trainer: Any, row: dict[str, float]) -> None:
        import optuna

        if self.metric not in row:
            raise UsageError(
                f"the run records no {self.metric} (it has {', '.join(sorted(row))}); a search needs "
                "a validation split: do not fix its size to 0"
            )
        value, epoch = float(row[self.metric]), int(row["epoch"])
        self.values.append(value)
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            raise optuna.TrialPruned(f"{self.metric} {value:.4g} at epoch {epoch} is worse than the other trials'")

    @property
    def best(self) -> float | None:
        """The best value reported (the run's best.pt holds that epoch's weights), None before the first epoch."""
        finite = [v for v in self.values if math.isfinite(v)]
        if not finite:
            return None
        return min(finite) if self.mode == "min" else max(finite)
