"""Batching by index from tensors that already live on the training device.

Small data sets (digits, MNIST, keypoints) fit in GPU memory many times over, so instead of a
DataLoader with per-sample Python and host-to-device copies we keep the whole set on the
device and slice it with a random permutation each epoch. The permutation is a function of
(seed, epoch) alone, which makes an interrupted run resume on exactly the same batches.
Under torchrun each rank takes every world_size-th index of the permutation (its shard).
When shuffling (training) the permutation is first padded with its own first indices so
every rank gets the same number of samples, hence of batches: DDP needs every rank to take
the same number of optimizer steps, or the gradient all-reduce waits forever. Without
shuffling (evaluation) the shards are exact, so metrics summed over ranks count each sample once.

`make_loader` is the same idea for data that must stay in a Dataset (DataLoader path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from typing import cast

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from torchlab.runtime import distributed

BatchTransform = Callable[[tuple[torch.Tensor, ...], torch.Generator], tuple[torch.Tensor, ...]]


class TensorBatcher:
    """Iterate over aligned tensors in mini-batches without leaving the device.

    Args:
        tensors: aligned tensors (first dimension = samples), e.g. (inputs, targets).
        batch_size: samples per batch on this rank; None or <= 0 means the whole set at once.
        shuffle: draw a fresh permutation every epoch (seeded by `seed` and the epoch).
        drop_last: skip the last, smaller batch (keeps batch statistics and compiled shapes stable).
        device: where to keep the tensors (moved once, here).
        transform: optional on-device augmentation `f(batch, generator) -> batch`, training only.
        seed: base seed for the permutation and the transform's generator.
        shard: split the samples across torchrun ranks (True for training and evaluation).
        even_shards: pad the shards to equal length (None: when shuffling, i.e. for training).
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int | None = 128,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        device: torch.device | str | None = None,
        transform: BatchTransform | None = None,
        seed: int = 0,
        shard: bool = True,
        even_shards: bool | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("TensorBatcher needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors disagree on the number of samples: {[t.shape[0] for t in tensors]}")
        self.tensors = tuple(t.to(device) if device is not None else t for t in tensors)
        self.num_samples = n
        self.batch_size = n if not batch_size or batch_size <= 0 else min(batch_size, n)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        world = distributed.current() if shard else distributed.World()
        self.rank, self.world_size = world.rank, world.world_size
        self.even_shards = shuffle if even_shards is None else even_shards

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation (and augmentation randomness) of this epoch."""
        self.epoch = epoch

    def _indices(self) -> torch.Tensor | None:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(self.num_samples, generator=g).to(self.device)
        elif self.world_size > 1:
            perm = torch.arange(self.num_samples, device=self.device)
        else:
            return None  # contiguous slices, no gather needed
        if self.world_size > 1:
            if self.even_shards:
                padding = self._shard_size() * self.world_size - self.num_samples
                perm = torch.cat([perm, perm[:padding]])
            perm = perm[self.rank :: self.world_size]
        return perm

    def _shard_size(self) -> int:
        if self.world_size > 1 and self.even_shards:
            return -(-self.num_samples // self.world_size)  # ceil: every rank the same
        return len(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        n = self._shard_size()
        full, rest = divmod(n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        perm = self._indices()
        n = self.num_samples if perm is None else perm.numel()
        generator = None
        if self.transform is not None:
            generator = torch.Generator(device=self.device).manual_seed(self.seed * 7919 + self.epoch + 1)
        for batch_index in range(len(self)):
            start = batch_index * self.batch_size
            stop = min(start + self.batch_size, n)
            if perm is None:
                batch = tuple(t[start:stop] for t in self.tensors)
            else:
                idx = perm[start:stop]
                batch = tuple(t.index_select(0, idx) for t in self.tensors)
            if self.transform is not None and generator is not None:  # both or neither
                batch = self.transform(batch, generator)
            yield batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    **loader_kwargs,
) -> DataLoader:
    """A DataLoader that reads this rank's shard of `dataset` (all of it without torchrun).

    Training (shuffle=True) uses a DistributedSampler, whose order is a function of (seed,
    epoch) and whose shards are padded to equal length; the Trainer calls its set_epoch.
    Evaluation (shuffle=False) reads every world_size-th sample, each sample exactly once.
    `loader_kwargs` go to DataLoader (num_workers, pin_memory, collate_fn, ...).
    """
    world = distributed.current()
    sampler: Iterable[int]
    if shuffle:
        sampler = DistributedSampler(
            dataset, num_replicas=world.world_size, rank=world.rank, shuffle=True, seed=seed, drop_last=False
        )
    else:
        sampler = range(world.rank, len(cast(Sized, dataset)), world.world_size)  # a map-style dataset
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **loader_kwargs)
