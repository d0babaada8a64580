"""The time budget (`max_time`, `--max-time 90s|15m|2h`): the run stops at the first optimizer step past
it, validates, writes last.pt (and best.pt when better) and says so; a resume goes on from that very
batch and ends exactly like a run that was never stopped. The clock is the number of training
batches run, so every stop falls on a known batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchlab import EarlyStopping, Trainer
from torchlab.config import TrainConfig, duration_seconds, with_overrides
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint, save_checkpoint
from torchlab.engine.full_batch import fit_and_save
from torchlab.engine.metrics import Metric
from torchlab.errors import CheckpointError, UsageError

EPOCHS = 6
SCRIPT = [0.5, 0.3, 0.4, 0.45, 0.6, 0.7]  # val_s at each epoch's end: the best is epoch 2


def test_durations_read_as_seconds():
    assert [duration_seconds(v) for v in ("90s", "15m", "2h", "1.5h", "90", " 2 m", "0.5s", 90, 2.5, None)] == [
        90.0,
        900.0,
        7200.0,
        5400.0,
        90.0,
        120.0,
        0.5,
        90.0,
        2.5,
        None,
    ]
    for bad in ("", "soon", "10x", "-5s", "0", "0m", "1h30", "inf", True, float("nan"), -1):
        with pytest.raises(ValueError):
            duration_seconds(bad)
    assert with_overrides(TrainConfig(), max_time="15m").max_time == "15m"
    with pytest.raises(
        UsageError,
        match=r"^--max-time must be a duration such as 90s, 15m or 2h \(or a number of "
        r"seconds\), got '10 minutes'$",
    ):
        with_overrides(TrainConfig(), max_time="10 minutes")
    with pytest.raises(ValueError, match="max_time must be"):
        Trainer(nn.Linear(1, 1), nn.MSELoss(), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1), max_time="soon")


class Scripted(Metric):
    """val_s: SCRIPT's value at an epoch's end; 0.0, the best of all, at a validation the budget's stop asked for."""

    mode = "min"

    def __init__(self):
        self.trainer = None

    def batch_stats(self, output, target, *rest):
        return torch.tensor(0.0), torch.tensor(1.0)

    def compute(self, total, count):
        return 0.0 if self.trainer.interruption is not None else SCRIPT[len(self.trainer.history)]


def data(loader=False):
    """32 training samples in 4 shuffled batches, 8 validation ones; loader=True: a plain DataLoader, whose
    shuffling draws from the global RNG as each epoch's iteration begins."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 * torch.randn(40, 1, generator=g)
    if loader:
        return DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8, shuffle=True), TensorBatcher((x[32:], y[32:]), 4)
    return TensorBatcher((x[:32], y[:32]), 8, shuffle=True, seed=4), TensorBatcher((x[32:], y[32:]), 4)


def run(out, *, max_time=None, resume=False, accumulate=1, checkpoint_every=1, snapshot_at=None, loader=False):
    """Train the small net (dropout, momentum, a one-cycle schedule per step); the clock counts training batches.

    Returns (trainer, result); snapshot_at=N keeps the weights the N-th training step left in `trainer.snapshot`.
    """
    train, val = data(loader)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    steps = -(-len(train) // accumulate)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=EPOCHS * steps)
    ticks = {"n": 0}

    def loss_fn(output, target):
        if torch.is_grad_enabled():  # a training batch, not a validation one
            if ticks["n"] == snapshot_at:
                trainer.snapshot = {k: v.clone() for k, v in model.state_dict().items()}
            ticks["n"] += 1
        return nn.functional.mse_loss(output, target)

    metric = Scripted()
    trainer = Trainer(
        model,
        loss_fn,
        opt,
        metrics={"s": metric},
        train_metrics=False,
        epochs=EPOCHS,
        scheduler=scheduler,
        scheduler_interval="batch",
        early_stopping=EarlyStopping("val_s"),
        checkpoint_dir=out,
        checkpoint_every=checkpoint_every,
        progress=False,
        accumulate=accumulate,
        max_time=max_time,
        clock=lambda: ticks["n"],
    )
    metric.trainer = trainer
    return trainer, trainer.fit(train, val, resume=resume)


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def assert_same_run(straight_dir, resumed_dir, straight, resumed):
    (t1, r1), (t2, r2) = straight, resumed
    assert same(t1.model.state_dict(), t2.model.state_dict())  # the final (best) weights
    assert without_seconds(r1.history) == without_seconds(r2.history)
    assert (r1.best_epoch, r1.best_value, r1.epochs_run, r1.stop_reason) == (
        r2.best_epoch,
        r2.best_value,
        r2.epochs_run,
        r2.stop_reason,
    )
    for name in ("best.pt", "last.pt"):
        a, b = read_checkpoint(straight_dir / name), read_checkpoint(resumed_dir / name)
        assert (a["epoch"], a["best"], a["early_stopping"]) == (b["epoch"], b["best"], b["early_stopping"]), name
        assert same(a["state_dict"], b["state_dict"]), name
        assert "interrupted" not in b
    assert (
        read_checkpoint(straight_dir / "last.pt")["scheduler"] == read_checkpoint(resumed_dir / "last.pt")["scheduler"]
    )


@pytest.mark.parametrize("accumulate, budget, loader", [(1, 10, False), (2, 9, False), (1, 10, True)])
def test_a_budget_that_runs_out_inside_an_epoch_validates_checkpoints_and_resumes_exactly(
    tmp_path, accumulate, budget, loader
):
    """The budget runs out at the 10th training batch (an optimizer step): 2 of epoch 3's 4 batches."""
    straight = run(tmp_path / "a", accumulate=accumulate, snapshot_at=10, loader=loader)
    assert straight[1].best_epoch == 2 and straight[1].stop_reason is None
    trainer, stopped = run(tmp_path / "b", accumulate=accumulate, max_time=budget, loader=loader)
    assert (stopped.stop_reason, stopped.epochs_run, stopped.stopped_early) == ("max_time", 2, False)
    assert stopped.partial["batches"] == 2 and stopped.partial["epoch"] == 3 and stopped.partial["val_s"] == 0.0
    assert stopped.stop_message.startswith(f"time budget of {budget}s used up in epoch 3 of 6, after 2 of 4 batches;")
    assert str(tmp_path / "b" / "last.pt") in stopped.stop_message
    # last.pt: the weights after the 10th step, two epochs of history, the stop's validation as its metrics
    last = read_checkpoint(tmp_path / "b" / "last.pt")
    assert same(last["state_dict"], straight[0].snapshot)
    assert last["epoch"] == 2 and [row["epoch"] for row in last["history"]] == [1, 2]
    assert last["metrics"] == stopped.partial and last["interrupted"]["batches"] == 2
    assert last["early_stopping"]["best_epoch"] == 1  # as before that validation: resume counts epoch 3 once
    # its validation beat the best: best.pt and the weights fit returns are the stop's, and say so
    best = read_checkpoint(tmp_path / "b" / "best.pt")
    assert same(best["state_dict"], straight[0].snapshot) and best["best"]["epoch"] == 3 and best["best"]["value"] == 0
    assert (stopped.best_epoch, stopped.best_value) == (3, 0.0) and same(
        trainer.model.state_dict(), straight[0].snapshot
    )
    assert (tmp_path / "b" / "history.csv").read_text().count("\n") == 3  # a header and the two whole epochs
    # resumed without a budget, under another global RNG (Dropout): the same run as the uninterrupted one,
    # best.pt back to epoch 2's weights
    torch.manual_seed(123)
    resumed = run(tmp_path / "b", accumulate=accumulate, resume=True, loader=loader)
    assert_same_run(tmp_path / "a", tmp_path / "b", straight, resumed)


def test_a_budget_that_runs_out_with_an_epoch_stops_before_the_next_and_writes_last_pt(tmp_path):
    straight = run(tmp_path / "a")
    # 8 batches: the end of epoch 2, which checkpoint_every=3 would not write
    _, stopped = run(tmp_path / "b", max_time=8, checkpoint_every=3)
    assert (stopped.stop_reason, stopped.epochs_run, stopped.partial) == ("max_time", 2, None)
    assert stopped.stop_message.startswith("time budget of 8s used up after epoch 2 of 6;")
    last = read_checkpoint(tmp_path / "b" / "last.pt")
    assert last["epoch"] == 2 and "interrupted" not in last
    torch.manual_seed(5)
    resumed = run(tmp_path / "b", resume=True)
    assert_same_run(tmp_path / "a", tmp_path / "b", straight, resumed)
    # a budget past the run's end changes nothing: the run ends with its last epoch, not with the budget
    _, whole = run(tmp_path / "c", max_time=EPOCHS * 4)
    assert (whole.stop_reason, whole.epochs_run, whole.stop_message) == (None, EPOCHS, "")


def test_an_interrupted_epoch_resumes_only_with_the_same_batches(tmp_path):
    run(tmp_path / "a", max_time=10)
    train, val = data()
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1))
    trainer = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.05),
        epochs=EPOCHS,
        early_stopping=EarlyStopping("val_loss"),
        progress=False,
    )
    with pytest.raises(
        CheckpointError,
        match=r"was stopped by its time budget after 2 of the 4 batches of epoch 3 "
        r"\(one optimizer step per 1\), but this run has 2 batches an epoch",
    ):
        trainer.fit(TensorBatcher(train.tensors, 16, shuffle=True), val, resume=tmp_path / "a" / "last.pt")
    with pytest.raises(CheckpointError, match="one step per 2"):
        Trainer(
            model,
            nn.MSELoss(),
            torch.optim.SGD(model.parameters(), lr=0.05),
            epochs=EPOCHS,
            accumulate=2,
            early_stopping=EarlyStopping("val_loss"),
            progress=False,
        ).fit(train, val, resume=tmp_path / "a" / "last.pt")


def test_the_budget_counts_from_each_fit_and_a_full_batch_run_saves_the_stop(tmp_path):
    """fit_and_save (checkpoint_every=0) writes the stop's checkpoint, which resumes inside the epoch."""
    x = torch.arange(8.0).unsqueeze(1)
    ticks = {"n": 100}  # the clock does not start at 0: the budget is this fit's

    def loss_fn(output, target):
        ticks["n"] += torch.is_grad_enabled()
        return nn.functional.mse_loss(output, target)

    def trainer(max_time=None):
        torch.manual_seed(0)
        model = nn.Linear(1, 1)
        return Trainer(
            model,
            loss_fn,
            torch.optim.SGD(model.parameters(), lr=0.01),
            epochs=3,
            progress=False,
            early_stopping=EarlyStopping("train_loss", patience=None, restore_best_weights=False),
            max_time=max_time,
            clock=lambda: ticks["n"],
        )

    batches = TensorBatcher((x, 2 * x), 4)  # 2 batches an epoch
    stopped = fit_and_save(trainer(max_time=3), batches, tmp_path / "a")
    assert stopped.stop_reason == "max_time" and stopped.epochs_run == 1 and stopped.partial["batches"] == 1
    last = read_checkpoint(tmp_path / "a" / "last.pt")
    assert last["interrupted"]["batches"] == 1 and last["epoch"] == 1
    straight = trainer()
    fit_and_save(straight, batches, tmp_path / "b")
    resumed = trainer()
    fit_and_save(resumed, batches, tmp_path / "a", resume=True)
    assert same(resumed.model.state_dict(), straight.model.state_dict())
    assert same(read_checkpoint(tmp_path / "a" / "last.pt")["state_dict"], straight.model.state_dict())


def test_a_stop_without_a_best_before_it_leaves_best_pt_to_the_next_write(tmp_path):
    """The budget runs out in the first epoch: best.pt holds the stop's weights; no older best to put back."""
    run(tmp_path / "a", max_time=2)
    last = read_checkpoint(tmp_path / "a" / "last.pt")
    assert last["epoch"] == 0 and last["history"] == [] and last["interrupted"]["best_written"]
    assert "replaced_best" not in last["interrupted"] and (tmp_path / "a" / "best.pt").exists()
    assert not (tmp_path / "a" / "history.csv").exists()
    straight = run(tmp_path / "b")
    resumed = run(tmp_path / "a", resume=True)
    assert_same_run(tmp_path / "b", tmp_path / "a", straight, resumed)
    # checkpoint_every=3: no best.pt yet when the budget's stop writes one; the resume removes it again, and
    # the run ends without a best.pt, as the uninterrupted one does (its best epoch, 2, is never written)
    run(tmp_path / "c", max_time=10, checkpoint_every=3)
    assert "replaced_best" not in read_checkpoint(tmp_path / "c" / "last.pt")["interrupted"]
    assert (tmp_path / "c" / "best.pt").exists()
    run(tmp_path / "c", resume=True, checkpoint_every=3)
    run(tmp_path / "d", checkpoint_every=3)
    assert not (tmp_path / "c" / "best.pt").exists() and not (tmp_path / "d" / "best.pt").exists()
    assert same(
        read_checkpoint(tmp_path / "c" / "last.pt")["state_dict"],
        read_checkpoint(tmp_path / "d" / "last.pt")["state_dict"],
    )


def test_a_budget_stopped_checkpoint_loads_with_plain_metadata(tmp_path):
    """torchlab.load on the last.pt a budget stop wrote: the model, and metadata without its resume state
    (the interrupted epoch's position and the best.pt it replaced, weights included)."""
    import torchlab

    run(tmp_path / "b", max_time=10)
    checkpoint = read_checkpoint(tmp_path / "b" / "last.pt")
    checkpoint["model"] = {"name": "digit-mlp", "kwargs": {"hidden": 8}}  # a registered model to rebuild
    checkpoint["state_dict"] = torchlab.build_model("digit-mlp", hidden=8).state_dict()
    save_checkpoint(checkpoint, tmp_path / "named.pt")
    _, meta = torchlab.load(tmp_path / "named.pt", device="cpu")

    def tensors(value) -> int:
        if isinstance(value, torch.Tensor):
            return 1
        if isinstance(value, dict):
            return sum(tensors(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(tensors(v) for v in value)
        return 0

    assert "interrupted" in checkpoint and tensors(checkpoint["interrupted"]) > 0
    assert "interrupted" not in meta and tensors(meta) == 0 and meta["epoch"] == 2
