"""Totals: an epoch's loss (weighted by batch size) and metric sums, float64 on the device,
read back with one all-reduce per epoch and never per batch."""

from __future__ import annotations

import pytest
import torch

from torchlab.engine.metrics import RMSE, Accuracy, Metric
from torchlab.engine.totals import Totals
from torchlab.runtime import distributed


def logits(*classes: int) -> torch.Tensor:
    """One row per sample whose arg-max is the given class (of 3)."""
    out = torch.zeros(len(classes), 3)
    out[torch.arange(len(classes)), torch.tensor(classes)] = 1.0
    return out


class FirstColumnMean(Metric):
    """The mean of output[:, 0] over the samples, its count a Python int (as Accuracy's)."""

    def batch_stats(self, output, *targets):
        return output[:, 0].sum(), output.shape[0]


def test_the_loss_is_a_mean_over_samples_and_metrics_are_their_own_totals():
    totals = Totals({"accuracy": Accuracy(), "first": FirstColumnMean()}, "cpu")
    totals.add(torch.tensor(1.0), logits(0, 1, 2), [torch.tensor([0, 1, 0])])  # 2 of 3 right; first column 1, 0, 0
    totals.add(torch.tensor(4.0), logits(2, 0), [torch.tensor([2, 2])])  # 1 of 2 right; first column 0, 1
    assert totals.samples == 5 and isinstance(totals.samples, int)
    summary = totals.summarize("val_")
    assert list(summary) == ["val_loss", "val_accuracy", "val_first"]
    assert summary["val_loss"] == pytest.approx((3 * 1.0 + 2 * 4.0) / 5)  # not the mean of the batch means (2.5)
    assert summary["val_accuracy"] == pytest.approx(3 / 5) and summary["val_first"] == pytest.approx(2 / 5)

    rmse = Totals({"rmse": RMSE()}, "cpu")  # a metric's compute turns its totals into the value (a square root)
    rmse.add(torch.tensor(0.0), torch.tensor([[1.0], [3.0]]), [torch.tensor([[0.0], [0.0]])])
    assert rmse.summarize("")["rmse"] == pytest.approx(5**0.5)


def test_the_sums_are_float64_so_a_long_epoch_loses_no_sample():
    totals = Totals({}, "cpu")
    many = torch.zeros(1).expand(2**24)  # 2**24 samples without the memory: float32 stops counting by ones here
    totals.add(torch.tensor(1.0), many, [])
    totals.add(torch.tensor(3.0), torch.zeros(1), [])
    assert totals.loss.dtype == torch.float64 and totals.loss.shape == ()
    assert totals.summarize("train_") == {"train_loss": (2**24 + 3) / (2**24 + 1)}


def test_adding_a_batch_never_reads_the_device():
    """On the "meta" device every host read (.item(), float(), .cpu()) fails: add() makes none."""
    totals = Totals({"accuracy": Accuracy()}, "meta")
    for _ in range(3):
        totals.add(
            torch.ones((), device="meta"),
            torch.zeros(4, 3, device="meta"),
            [torch.zeros(4, dtype=torch.long, device="meta")],
        )
    assert totals.samples == 12
    assert [t.device.type for t in (totals.loss, *totals.sums, *totals.counts)] == ["meta"] * 3
    assert {t.dtype for t in (totals.loss, *totals.sums, *totals.counts)} == {torch.float64}


def test_an_empty_pass_gives_zero_and_no_metrics_gives_the_loss_alone():
    assert Totals({}, "cpu").summarize("val_") == {"val_loss": 0.0}
    totals = Totals({"accuracy": Accuracy()}, "cpu")
    assert totals.summarize("") == {"loss": 0.0, "accuracy": 0.0}


def test_summarize_sums_every_rank_in_one_all_reduce(monkeypatch):
    reduced: list[torch.Tensor] = []
    other_rank = torch.tensor([6.0, 2.0, 0.0, 2.0], dtype=torch.float64)  # loss sum, samples, correct, count

    def all_reduce_sum(flat):
        reduced.append(flat.clone())
        return flat + other_rank

    monkeypatch.setattr(distributed, "all_reduce_sum", all_reduce_sum)
    totals = Totals({"accuracy": Accuracy()}, "cpu")
    totals.add(torch.tensor(1.0), logits(0, 1), [torch.tensor([0, 1])])
    totals.add(torch.tensor(2.0), logits(1), [torch.tensor([0])])
    summary = totals.summarize("val_")
    assert len(reduced) == 1 and reduced[0].dtype == torch.float64
    assert reduced[0].tolist() == [2 * 1.0 + 1 * 2.0, 3.0, 2.0, 3.0]  # this rank's loss sum, samples, correct, count
    assert summary == {"val_loss": (4.0 + 6.0) / (3 + 2), "val_accuracy": (2 + 0) / (3 + 2)}


def test_the_one_all_reduce_gets_one_float64_tensor_on_the_training_device(monkeypatch):
    """NCCL reduces GPU tensors only: everything summarize sends is made on the device ("meta" stands in)."""
    sent: list[torch.Tensor] = []

    def all_reduce_sum(flat):
        sent.append(flat)
        return torch.tensor([6.0, 3.0, 2.0, 3.0], dtype=torch.float64)  # what the ranks summed

    monkeypatch.setattr(distributed, "all_reduce_sum", all_reduce_sum)
    totals = Totals({"accuracy": Accuracy()}, "meta")
    totals.add(
        torch.ones((), device="meta"),
        torch.zeros(3, 3, device="meta"),
        [torch.zeros(3, dtype=torch.long, device="meta")],
    )
    assert totals.summarize("val_") == {"val_loss": 2.0, "val_accuracy": 2 / 3}
    assert [(t.device.type, t.dtype, t.shape) for t in sent] == [("meta", torch.float64, (4,))]
