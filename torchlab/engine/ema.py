"""An exponential moving average (EMA) of a model's weights, for the `ema` config field (the Trainer's `ema` argument).

    average = WeightAverage(model, decay=0.999)
    ...                                   # after every optimizer step:
    average.update(model)
    with average.swapped_into(model):     # the model holds the averaged weights in here
        evaluate(model)

After step n the average is `a = d * a + (1 - d) * w` with d = min(decay, (1 + n) / (10 + n)):
the warm-up keeps the random start from lingering in a short run. Floating-point buffers
(batch norm's running statistics) are averaged too; integer ones (num_batches_tracked) are copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """The moving average of `model`'s state dict (see the module docstring)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._held: dict[str, torch.Tensor] | None = None  # the training weights while swapped out

    def current_decay(self) -> float:
        """The decay of the next update: the warm-up value early on, `decay` later."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model`'s weights after one optimizer step."""
        d = self.current_decay()
        self.updates += 1
        for name, value in model.state_dict().items():
            kept = self.shadow[name]
            if kept.is_floating_point():
                kept.lerp_(value.detach(), 1.0 - d)
            else:
                kept.copy_(value)

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[None]:
        """Inside: `model` holds the averaged weights (in place, so optimizers keep their tensors).

        Nested use is a no-op, so a checkpoint written inside a validation sees the same weights.
        """
        if self._held is not None:
            yield
            return
        self._held = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(self._held)
            self._held = None

    def training_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The weights the optimizer trains: the held ones while swapped, else `model`'s own."""
        return self._held if self._held is not None else model.state_dict()

    def state_dict(self, model: nn.Module) -> dict[str, Any]:
        """What a checkpoint keeps to resume the average: decay, updates and the training weights.

        The averaged weights themselves are the checkpoint's state_dict (what inference loads).
        """
        weights = {k: v.detach().cpu().clone() for k, v in self.training_weights(model).items()}
        return {"decay": self.decay, "updates": self.updates, "training_weights": weights}

    def load(self, model: nn.Module, state: dict[str, Any]) -> None:
        """Resume: `model` holds a checkpoint's averaged weights; `state` is that checkpoint's `ema`."""
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.updates = int(state["updates"])
        model.load_state_dict(state["training_weights"])
