"""The digit MLP: 64 pixels -> 32 ReLU units -> 10 class logits (2,410 parameters)."""

from __future__ import annotations

import torch
from torch import nn

from torchlab.models import register_model


@register_model("digit-mlp", input_shape=(64,), description="64->32->10 ReLU MLP for 8x8 digits (2,410 params)")
class DigitMLP(nn.Module):
    """One hidden ReLU layer; outputs logits (softmax lives in the loss / at prediction)."""

    def __init__(self, in_features: int = 64, hidden: int = 32, classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.output(self.dropout(torch.relu(self.hidden(x))))

    @torch.no_grad()
    def init_like_seed(self, std: float = 0.1, generator: torch.Generator | None = None) -> None:
        """The seed notebook's initialisation: weights N(0, std^2), biases zero."""
        for layer in (self.hidden, self.output):
            layer.weight.normal_(0.0, std, generator=generator)
            layer.bias.zero_()
