"""Metrics as (sum, count) pairs: cheap to accumulate on the device and to all-reduce across ranks."""

from __future__ import annotations

import math

import torch


class Metric:
    """Accumulated as a sum and a count per batch; `compute` turns the epoch totals into a number."""

    mode = "max"  # whether bigger is better ("max") or smaller ("min"), for early stopping

    def batch_stats(self, output: torch.Tensor, *targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def compute(self, total: float, count: float) -> float:
        return total / max(count, 1e-12)


class Accuracy(Metric):
    """Fraction of samples whose arg-max logit is the target class (multi-class)."""

    def batch_stats(self, output, target, *rest):
        correct = (output.argmax(dim=1) == target).sum()
        return correct, target.shape[0]  # a count may be a plain int: no tensor to build per batch


class BinaryAccuracy(Metric):
    """Fraction right for one logit per sample (logit >= 0 means class 1) and 0/1 float targets."""

    def batch_stats(self, output, target, *rest):
        pred = (output.reshape(-1) >= 0).to(target.dtype)
        correct = (pred == target.reshape(-1)).sum()
        return correct, torch.tensor(target.numel(), device=output.device)


class RMSE(Metric):
    """Root mean squared error over every labeled value, optionally masked and rescaled.

    `scale` converts model units back to physical units (e.g. normalized keypoints -> pixels).
    A third batch tensor, if present, is a 0/1 mask of labeled values.
    """

    mode = "min"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def batch_stats(self, output, target, *rest):
        diff = (output.float() - target.float()) * self.scale
        if rest:
            mask = rest[0].float()
            return (diff.pow(2) * mask).sum(), mask.sum()
        return diff.pow(2).sum(), torch.tensor(diff.numel(), device=output.device, dtype=torch.float32)

    def compute(self, total, count):
        return math.sqrt(total / max(count, 1e-12))


# ------------------------------------------------------ whole-set metrics (evaluation and figures)
def accuracy(scores: torch.Tensor, target: torch.Tensor) -> float:
    """Share of rows whose arg-max score (probability or logit) is the target class."""
    return float((scores.argmax(dim=1) == target.long()).float().mean())


def binary_accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Share of samples whose logit is >= 0 exactly when the target is 1."""
    return float(((logits.reshape(-1) >= 0).float() == target.reshape(-1).float()).float().mean())


def masked_rmse(pred, truth, mask) -> float:
    """RMSE over the labeled values (mask = 1) of NumPy arrays or tensors; NaN truths count as unlabeled."""
    import numpy as np

    pred, truth, mask = (np.asarray(a, dtype=np.float64) for a in (pred, truth, mask))
    sq = (pred - np.nan_to_num(truth)) ** 2 * mask
    return float(np.sqrt(sq.sum() / max(mask.sum(), 1.0)))


def nll(probabilities: torch.Tensor, target: torch.Tensor) -> float:
    """Mean negative log-likelihood of the target classes under `probabilities`."""
    picked = probabilities[torch.arange(len(target)), target.long()]
    return float(-picked.clamp_min(1e-12).log().mean())


def masked_mse(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the labeled coordinates (mask = 1); unlabeled ones get no gradient.

    With a full mask this is exactly nn.MSELoss() (the seed's loss).
    """
    diff = (output.float() - target.float()) * mask
    return diff.pow(2).sum() / mask.sum().clamp_min(1.0)
