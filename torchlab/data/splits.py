"""Splits of a data set (training / held out) and the normalization a run records in its checkpoint."""

from __future__ import annotations

from typing import Any

import torch

from torchlab.errors import UsageError


def split_indices(n: int, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train, holdout) index split with `fraction` of n samples held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    k = max(1, int(round(n * fraction)))
    return perm[k:], perm[:k]


def hold_out(
    x: torch.Tensor, y: torch.Tensor, val_size: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(x_train, y_train, x_val, y_val): `val_size` random samples held out (None, None when 0)."""
    if val_size <= 0:
        return x, y, None, None
    if val_size >= len(x):
        raise UsageError(f"--val-size {val_size} leaves no training images (there are {len(x)})")
    keep, hold = split_indices(len(x), val_size / len(x), seed=seed)
    return x[keep], y[keep], x[hold], y[hold]


def normalize(x: torch.Tensor, normalization: dict[str, Any] | None) -> torch.Tensor:
    """(x - mean) / std with a run's normalization (its checkpoint's `normalization`) (none: x as it is)."""
    norm = normalization or {"mean": 0.0, "std": 1.0}
    return (x - float(norm["mean"])) / float(norm["std"])
