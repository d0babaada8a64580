"""The one inference path: batched, no-grad, eval-mode forward passes on the model's device."""

from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def predict_outputs(model: nn.Module, x: torch.Tensor, batch_size: int | None = 1024) -> torch.Tensor:
    """model(x) in eval mode, in batches on the model's device; float32 outputs on the CPU."""
    model.eval()
    device = model_device(model)
    size = batch_size if batch_size and batch_size > 0 else max(len(x), 1)
    outputs = [model(x[i : i + size].to(device)).float().cpu() for i in range(0, len(x), size)]
    return torch.cat(outputs) if outputs else torch.zeros(0)


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(n, classes) probabilities: softmax of the logits, or columns (1 - p, p) for one logit."""
    if logits.dim() == 2 and logits.shape[1] > 1:
        return logits.softmax(dim=1)
    p = logits.reshape(-1, 1).sigmoid()
    return torch.cat([1 - p, p], dim=1)
