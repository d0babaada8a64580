"""What `Trainer.fit` returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FitResult:
    """What `Trainer.fit` returns: the history and where the run ended."""

    history: list[dict[str, float]]
    best_value: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    fit_seconds: float
    checkpoint_dir: Path | None = None
    stop_reason: str | None = None  # an early-stopping rule, "max_time", or None: every epoch ran
    stop_message: str = ""  # the same in words, one line for the run's summary
    partial: dict[str, float] | None = None  # the row of an epoch the time budget cut short (not in history)

    @property
    def last(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}
