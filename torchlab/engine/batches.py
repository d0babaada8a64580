"""What the Trainer's loop does to batches before the model sees them, and how it counts them.

Batches are tuples `(inputs, *targets)` from a TensorBatcher, a DataLoader or any iterable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

Batch = tuple[torch.Tensor, ...]
Batches = Iterable[Batch]
NULL_CONTEXT = contextlib.nullcontext()  # one reusable object for every step: no autocast, no DDP no_sync


def length(batches: Batches) -> int | None:
    """The number of batches, or None for an iterable without a length."""
    return len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]


def steps_per_epoch(batches: Batches, accumulate: int) -> int:
    """Optimizer steps per epoch: one per `accumulate` batches and one after the last (0 without a length)."""
    return -(-(length(batches) or 0) // accumulate)


def set_epoch(batches: Batches, epoch: int) -> None:
    """Tell a TensorBatcher or a DataLoader's (distributed) sampler which epoch begins: it fixes the shuffle."""
    for obj in (batches, getattr(batches, "sampler", None), getattr(batches, "batch_sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def with_last(iterator: Iterator[Batch], count: int | None, start: int) -> Iterator[tuple[Batch, bool]]:
    """(batch, whether it is the epoch's last) for batches numbered from `start` of `count` (None: look ahead)."""
    if count is not None:
        for index, batch in enumerate(iterator, start):
            yield batch, index + 1 == count
        return
    current: Batch | None = next(iterator, None)
    while current is not None:
        following: Batch | None = next(iterator, None)
        yield current, following is None
        current = following


def to_device(batch: Batch, device: torch.device, channels_last: bool = False) -> Batch:
    """The batch on `device` (a DataLoader's CPU batch is copied; a TensorBatcher's is there already),
    4-D inputs in channels-last memory order when asked."""
    if any(t.device != device for t in batch):
        batch = tuple(t.to(device, non_blocking=True) for t in batch)
    if channels_last and batch[0].dim() == 4:
        batch = (batch[0].contiguous(memory_format=torch.channels_last),) + batch[1:]
    return batch


def autocast(device: torch.device, amp: bool) -> Any:
    """bf16 autocast on CUDA when `amp`; elsewhere the shared null context."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return NULL_CONTEXT
