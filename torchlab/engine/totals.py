"""The running sums of one pass over batches: the loss and each metric, read back once per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from torchlab.engine.metrics import Metric
from torchlab.runtime import distributed


class Totals:
    """The loss summed over samples and each metric's (sum, count), for one epoch's training or evaluation.

    The sums are 0-dim float64 tensors on `device`: a batch costs one in-place add per quantity and
    never waits for the device. `summarize` sums them over the ranks in one all-reduce and reads them back.
    """

    def __init__(self, metrics: Mapping[str, Metric], device: torch.device | str) -> None:
        self.metrics = dict(metrics)
        self.device = torch.device(device)
        self.loss = self._zero()
        self.samples = 0  # a Python int: batch sizes are known without asking the device
        self.sums = [self._zero() for _ in self.metrics]
        self.counts = [self._zero() for _ in self.metrics]

    def _zero(self) -> torch.Tensor:
        return torch.zeros((), device=self.device, dtype=torch.float64)

    def add(self, loss: torch.Tensor, output: torch.Tensor, targets: Sequence[torch.Tensor]) -> None:
        """Add one batch: its mean loss weighted by its size, and each metric's batch statistics."""
        n = output.shape[0]
        self.loss.add_(loss.detach(), alpha=n)
        self.samples += n
        for i, metric in enumerate(self.metrics.values()):
            total, count = metric.batch_stats(output.detach(), *targets)
            self.sums[i] += total  # in place: float64 whatever the metric's dtype
            self.counts[i] += count

    def summarize(self, prefix: str) -> dict[str, float]:
        """{prefix + "loss": mean loss per sample, prefix + name: each metric}, over every rank's batches."""
        samples = torch.tensor(self.samples, device=self.device, dtype=torch.float64)
        flat = torch.stack([self.loss, samples, *self.sums, *self.counts])
        loss, samples, *rest = distributed.all_reduce_sum(flat).cpu().tolist()
        sums, counts = rest[: len(self.sums)], rest[len(self.sums):]
        out = {f"{prefix}loss": loss / max(samples, 1)}
        for (name, metric), total, count in zip(self.metrics.items(), sums, counts):
            out[f"{prefix}{name}"] = metric.compute(total, count)
        return out
