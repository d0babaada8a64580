"""A dry run: one training step and one validation batch of the real data and model, nothing written.

The first thing to try on a new machine or a new data file: it reads the data, builds the
model, runs a forward and backward pass and an optimizer step, evaluates one validation batch,
and reports what it saw (shapes, parameter count, losses, peak memory) in a `DryRunReport`.
`Trainer(dry_run=True).fit(...)` raises `DryRunComplete` carrying the report, so the code after
`fit` (test metrics, figures, checkpoints) never runs; `torchlab.train(..., dry_run=True)`
returns the report and `torchlab train TASK --dry-run` prints it.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from torchlab.engine.batches import Batches, length, set_epoch, to_device
from torchlab.engine.totals import Totals
from torchlab.errors import TrainingError

if TYPE_CHECKING:
    from torchlab.engine.trainer import Trainer


@dataclass
class DryRunReport:
    """What one training step and one validation batch showed."""

    device: str
    parameters: int  # every parameter of the model
    trainable: int  # those that require a gradient
    train_batches: int | None  # batches per epoch on this process (None: the batches have no length)
    val_batches: int | None
    accumulate: int  # batches per optimizer step
    inputs: list[tuple[list[int], str]]  # (shape, dtype) of each tensor of the training batch: inputs, *targets
    output: list[int]  # the model's output shape on that batch
    train: dict[str, float]  # train_loss and the training metrics on that batch
    val: dict[str, float] | None = None  # val_loss and the metrics on the first validation batch
    val_inputs: list[tuple[list[int], str]] | None = None
    memory_bytes: int | None = None  # peak memory, see `memory_kind`
    memory_kind: str = ""
    step_seconds: float = 0.0  # the training step: forward, backward, optimizer step (the first one: warm-up included)
    notes: list[str] = field(default_factory=list)  # what the real run would trip over

    def lines(self) -> list[str]:
        """The report as the CLI prints it, one fact a line."""
        out = [
            f"dry run on {self.device}: one training step and one validation batch, nothing written",
            f"parameters: {self.parameters:,} ({self.trainable:,} trainable)",
            f"training batch: {describe(self.inputs)} -> output {shape_text(self.output)}",
            f"batches per epoch: {_count(self.train_batches)} training, {_count(self.val_batches)} validation"
            + (f"; one optimizer step per {self.accumulate} batches" if self.accumulate > 1 else ""),
            f"{values(self.train)}  (step: {self.step_seconds * 1000:.1f} ms)",
        ]
        if self.val is not None and self.val_inputs is not None:
            out.append(f"validation batch: {describe(self.val_inputs)}")
            out.append(values(self.val))
        if self.memory_bytes is not None:
            out.append(f"memory: {self.memory_bytes / 2**20:,.1f} MiB ({self.memory_kind})")
        return out + self.notes


class DryRunComplete(Exception):
    """Raised by `Trainer.fit` in a dry run once the two batches ran; `report` is what they showed."""

    def __init__(self, report: DryRunReport) -> None:
        super().__init__("dry run complete")
        self.report = report


def try_batches(trainer: Trainer, train: Batches, val: Batches | None = None) -> DryRunReport:
    """One training step (forward, backward, optimizer step) and one validation batch: what they show.

    Nothing is written; the model's weights take that one step.
    """
    device, es = trainer.device, trainer.early_stopping
    reset_peak_memory(device)
    trainer.net.train()
    set_epoch(train, trainer.start_epoch)
    batch = next(iter(train), None)
    if batch is None:
        raise TrainingError("the training data hold no batch: nothing to train on; check the data and its size")
    inputs, *targets = batch = to_device(batch, device, trainer.channels_last)
    t0 = time.perf_counter()
    loss, output = trainer.train_step(inputs, targets)
    totals = Totals(trainer.metrics if trainer.train_metrics else {}, device)
    totals.add(loss, output, targets)
    row = totals.summarize("train_")  # reads the loss back: the step is done
    seconds = time.perf_counter() - t0
    val_shapes = None
    if val is not None:
        val_batch = next(iter(val), None)
        if val_batch is not None:
            val_batch = to_device(val_batch, device, trainer.channels_last)
            row.update(trainer.evaluate([val_batch]))
            val_shapes = shapes(val_batch)
    notes = [
        f"{k} is not finite: the run would stop there with an error"
        for k, v in row.items()
        if k.endswith("loss") and not math.isfinite(v)
    ]
    if es.monitor not in row:
        notes.append(f"early stopping monitors {es.monitor!r}, which is not among {sorted(row)}")
    memory, memory_kind = peak_memory(device)
    parameters, trainable = count_parameters(trainer.model)
    return DryRunReport(
        device=str(device),
        parameters=parameters,
        trainable=trainable,
        train_batches=length(train),
        val_batches=length(val) if val is not None else None,
        accumulate=trainer.accumulate,
        inputs=shapes(batch),
        output=list(output.shape),
        train={k: v for k, v in row.items() if k.startswith("train_")},
        val={k: v for k, v in row.items() if k.startswith("val_")} if val_shapes is not None else None,
        val_inputs=val_shapes,
        memory_bytes=memory,
        memory_kind=memory_kind,
        step_seconds=seconds,
        notes=notes,
    )


def shapes(batch: tuple[torch.Tensor, ...]) -> list[tuple[list[int], str]]:
    """(shape, dtype name) of each tensor of a batch."""
    return [(list(t.shape), str(t.dtype).replace("torch.", "")) for t in batch]


def shape_text(shape: list[int]) -> str:
    return str(tuple(shape))


def describe(tensors: list[tuple[list[int], str]]) -> str:
    """'inputs (64, 1, 28, 28) float32, targets (64,) int64' for (inputs, *targets)."""
    names = ["inputs"] + ["targets" if len(tensors) == 2 else f"targets[{i}]" for i in range(len(tensors) - 1)]
    return ", ".join(f"{name} {shape_text(shape)} {dtype}" for name, (shape, dtype) in zip(names, tensors))


def values(row: dict[str, float]) -> str:
    """'train_loss=0.6931 train_accuracy=0.5'."""
    return " ".join(f"{k}={v:.4g}" for k, v in row.items())


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable ones)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def reset_peak_memory(device: torch.device) -> None:
    """Start counting peak memory afresh where the device can (CUDA)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int | None, str]:
    """(bytes, what they are): CUDA's peak allocation since the reset, MPS's allocation now, else the process's
    peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "peak CUDA memory allocated by tensors"
    if device.type == "mps":
        return int(torch.mps.driver_allocated_memory()), "MPS memory held by the driver"
    try:
        import resource
    except ImportError:  # Windows
        return None, ""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return int(peak if sys.platform == "darwin" else peak * 1024), "peak resident memory of this process"
