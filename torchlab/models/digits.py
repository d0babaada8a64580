"""The digit MLP: 64 pixels -> 32 ReLU units -> 10 class logits (2,410 parameters)."""

from __future__ import annotations

import torch
from torch import nn

from torchlab.models import register_model

SCALE_FLOOR = 0.1  # smallest per-pixel scale: the always-blank border pixels stay at 0 instead of dividing by 0


@register_model("digit-mlp", input_shape=(64,), description="64->32->10 ReLU MLP for 8x8 digits (2,410 params)")
class DigitMLP(nn.Module):
    """One hidden ReLU layer; outputs logits (softmax lives in the loss / at prediction).

    `standardize=True` gives the model two buffers, a per-pixel mean and scale set once from the
    training images (`fit_standardization`), and it standardizes its input with them; they travel
    in the checkpoint, so inference and export feed the same pixels as before. `input_noise` adds
    Gaussian noise of that standard deviation to the standardized pixels while training (a
    regularizer, like dropout: off in eval mode).
    """

    input_mean: torch.Tensor  # buffers, registered only when standardize
    input_scale: torch.Tensor

    def __init__(
        self,
        in_features: int = 64,
        hidden: int = 32,
        classes: int = 10,
        dropout: float = 0.0,
        standardize: bool = False,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if input_noise < 0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise}")
        self.standardize = standardize
        self.input_noise = input_noise
        if standardize:
            self.register_buffer("input_mean", torch.zeros(in_features))
            self.register_buffer("input_scale", torch.ones(in_features))
        self.hidden = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.standardize:
            x = (x - self.input_mean) / self.input_scale
        if self.training and self.input_noise > 0:
            x = x + self.input_noise * torch.randn_like(x)
        return self.output(self.dropout(torch.relu(self.hidden(x))))

    @torch.no_grad()
    def fit_standardization(self, x: torch.Tensor) -> None:
        """Per-pixel mean and standard deviation (plus SCALE_FLOOR) of the training images `x`."""
        if not self.standardize:
            raise ValueError("this DigitMLP was built with standardize=False")
        x = x.flatten(1).float()
        self.input_mean.copy_(x.mean(0))
        self.input_scale.copy_(x.std(0) + SCALE_FLOOR)

    @torch.no_grad()
    def init_like_seed(self, std: float = 0.1, generator: torch.Generator | None = None) -> None:
        """The seed notebook's initialization: weights N(0, std^2), biases zero."""
        for layer in (self.hidden, self.output):
            layer.weight.normal_(0.0, std, generator=generator)
            layer.bias.zero_()
