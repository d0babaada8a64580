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

    def state(self) -> list[float]:
        """The sums over every rank's batches so far: [loss, samples, *metric sums, *metric counts].

        Under torchrun this is a collective: every rank calls it. The local sums stay as they are.
        """
        samples = torch.tensor(self.samples, device=self.device, dtype=torch.float64)
        flat = torch.stack([self.loss, samples, *self.sums, *self.counts])
        return distributed.all_reduce_sum(flat).cpu().tolist()

    def load(self, state: Sequence[float]) -> None:
        """Add sums that `state()` returned, e.g. the batches of an epoch trained before an interruption
        (one rank loads them, the others start from zero: the epoch's summary sums over the ranks)."""
        loss, samples, *rest = state
        if len(rest) != 2 * len(self.sums):
            raise ValueError(f"the saved sums are for {len(rest) // 2} metrics, not {len(self.sums)}")
        self.loss += loss
        self.samples += int(samples)
        for i, (total, count) in enumerate(zip(rest[: len(self.sums)], rest[len(self.sums) :])):
            self.sums[i] += total
            self.counts[i] += count

    def summarize(self, prefix: str) -> dict[str, float]:
        """{prefix + "loss": mean loss per sample, prefix + name: each metric}, over every rank's batches."""
        loss, samples, *rest = self.state()
        sums, counts = rest[: len(self.sums)], rest[len(self.sums) :]
        out = {f"{prefix}loss": loss / max(samples, 1)}
        for (name, metric), total, count in zip(self.metrics.items(), sums, counts):
            out[f"{prefix}{name}"] = metric.compute(total, count)
        return out
