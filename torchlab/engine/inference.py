"""The one inference path: batched, no-grad, eval-mode forward passes on the model's device."""

from __future__ import annotations

import torch
from torch import nn

from torchlab.runtime.guards import check_memory


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def predict_outputs(model: nn.Module, x: torch.Tensor, batch_size: int | None = 1024) -> torch.Tensor:
    """model(x) in eval mode, in batches on the model's device; float32 outputs on the CPU.

    A batch whose forward pass would not fit the device's memory budget is a UsageError naming --batch-size.
    """
    model.eval()
    device = model_device(model)
    size = batch_size if batch_size and batch_size > 0 else max(len(x), 1)
    if min(size, len(x)) > 1:
        check_memory(
            min(size, len(x)) * sample_bytes(model, x[:1].to(device)),
            f"--batch-size {size:,} ({min(size, len(x)):,} inputs a batch)",
            "lower --batch-size",
            device,
        )
    outputs = [model(x[i : i + size].to(device)).float().cpu() for i in range(0, len(x), size)]
    return torch.cat(outputs) if outputs else torch.zeros(0)


def sample_bytes(model: nn.Module, sample: torch.Tensor) -> int:
    """Bytes one input of a no-grad forward pass holds at its peak, measured on `sample` (a batch of one):
    the input and four times the largest output of a layer (its input, output and what skips keep alive)."""
    largest = [0]

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                largest[0] = max(largest[0], t.numel() * t.element_size())

    hooks = [m.register_forward_hook(record) for m in model.modules() if not any(True for _ in m.children())]
    try:
        model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return sample.numel() * sample.element_size() + 4 * largest[0]


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(n, classes) probabilities: softmax of the logits, or columns (1 - p, p) for one logit."""
    if logits.dim() == 2 and logits.shape[1] > 1:
        return logits.softmax(dim=1)
    p = logits.reshape(-1, 1).sigmoid()
    return torch.cat([1 - p, p], dim=1)
