"""The linear patch regressor: brightness = w0 + w1*x + w2*y on rows [1, x, y] (3 parameters)."""

from __future__ import annotations

import torch
from torch import nn

from torchlab.models import register_model


@register_model(
    "patch-linear", input_shape=(3,), description="brightness = w0 + w1*x + w2*y on a gray patch (3 params)"
)
class LinearPatchRegressor(nn.Module):
    """Three weights [w0, w1, w2]; each input row [1, x, y] gives w0 + w1*x + w2*y."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3))  # the seed starts from w = 0

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (N, 3) = [1, x, y] -> predicted brightness (N,)."""
        return rows @ self.weight
