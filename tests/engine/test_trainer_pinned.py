"""What a Trainer user reads and relies on, pinned value by value: the time budget's summary line
(its durations in words), the row and the files of a budget stop, the progress lines around it,
TensorBoard's step count across such a stop, the dry run's report, and the refusals of bad
arguments. The clock counts training batches, so every budget stop falls on a known batch."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn

from torchlab import EarlyStopping, Trainer
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.engine.dry_run import DryRunComplete
from torchlab.engine.metrics import Metric
from torchlab.errors import NonFiniteLoss, TrainingError


def data(n=16, batch=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + 8, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    return TensorBatcher((x[:n], y[:n]), batch), TensorBatcher((x[n:], y[n:]), 4)


def make(out=None, *, epochs=3, max_time=None, on_train=None, on_val=None, **kwargs):
    """A linear model on 3 features; `trainer.ticks` counts the training batches run, which is the clock.

    on_train(trainer) / on_val(trainer, loss) run in the loss of each training / validation batch.
    """
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    ticks = {"n": 0}

    def loss_fn(output, target):
        loss = nn.functional.mse_loss(output, target)
        if torch.is_grad_enabled():
            ticks["n"] += 1
            if on_train is not None:
                on_train(trainer)
        elif on_val is not None:
            loss = on_val(trainer, loss)
        return loss

    settings = {"progress": False, "early_stopping": EarlyStopping("val_loss", patience=None), **kwargs}
    trainer = Trainer(
        model,
        loss_fn,
        torch.optim.SGD(model.parameters(), lr=0.05),
        epochs=epochs,
        checkpoint_dir=out,
        max_time=max_time,
        clock=lambda: ticks["n"],
        **settings,
    )
    trainer.ticks = ticks
    return trainer


class Unsized:
    """Batches without a length (a generator's, a streaming loader's), iterable again every epoch."""

    def __init__(self, batches):
        self.batches = list(batches)

    def __iter__(self):
        return iter(self.batches)


class Scripted(Metric):
    """val_s: 0.1 at the first epoch's end, 0.9 at a validation the budget's stop asked for."""

    mode = "min"

    def __init__(self):
        self.trainer = None

    def batch_stats(self, output, target, *rest):
        return torch.tensor(0.0), torch.tensor(1.0)

    def compute(self, total, count):
        return 0.9 if self.trainer.interruption is not None else 0.1 + len(self.trainer.history)


# ----------------------------------------------------------------- the budget's summary line
@pytest.mark.parametrize(
    "budget, text",
    [
        (90, "1m30s"),
        (7200, "2h"),
        (3661, "1h1m1s"),
        (60, "1m"),
        (61, "1m1s"),
        (59, "59s"),
        (2.5, "2.5s"),
        (90.5, "90.5s"),
        (0.5, "0.5s"),
        ("15m", "15m"),
        ("1.5h", "1h30m"),
        (3600 + 120, "1h2m"),
    ],
)
def test_the_summary_line_says_the_budget_in_hours_minutes_and_seconds(budget, text):
    """The clock jumps past any budget at the first training batch: the run stops after epoch 1 of 2."""
    x = torch.ones(4, 3)
    clock = {"t": 0.0}
    model = nn.Linear(3, 1)

    def loss_fn(output, target):
        clock["t"] = 1e9
        return nn.functional.mse_loss(output, target)

    trainer = Trainer(
        model,
        loss_fn,
        torch.optim.SGD(model.parameters(), lr=0.01),
        epochs=2,
        progress=False,
        max_time=budget,
        clock=lambda: clock["t"],
    )
    result = trainer.fit(TensorBatcher((x, x[:, :1]), 4))
    assert (result.stop_reason, result.epochs_run) == ("max_time", 1)
    assert result.stop_message == f"time budget of {text} used up after epoch 1 of 2"


def test_a_stop_inside_an_epoch_of_batches_without_a_length_says_so():
    train, val = data()
    trainer = make(max_time=2)
    result = trainer.fit(Unsized(train), list(val))
    assert result.stop_message == "time budget of 2s used up in epoch 1 of 3, after 2 of ? batches; validated there"
    assert result.partial["batches"] == 2 and result.epochs_run == 0


def test_a_stop_at_the_second_last_epoch_end_stops_there(tmp_path):
    """Out of time as epoch 2 of 3 ends: the run stops before epoch 3; at the last epoch's end nothing is said."""
    train, val = data()
    result = make(tmp_path, max_time=8).fit(train, val)
    assert (result.stop_reason, result.epochs_run, result.partial) == ("max_time", 2, None)
    assert result.stop_message == (
        f"time budget of 8s used up after epoch 2 of 3; {tmp_path / 'last.pt'} holds this state: resume to go on"
    )
    result = make(max_time=12).fit(train, val)
    assert (result.stop_reason, result.epochs_run, result.stop_message) == (None, 3, "")


# ----------------------------------------------------------------- the stop's row and files
def test_the_row_of_a_stop_inside_an_epoch_and_the_last_pt_it_writes(tmp_path):
    """The stop's row: the training means so far, the validation, the lr, the seconds and the batches;
    last.pt holds that row and the RNG state after the batches trained (not after the validation)."""
    train, val = data()
    seen = {}

    def on_train(trainer):
        if trainer.ticks["n"] == 6:  # the stop's batch: no RNG draw after its loss until the stop
            seen["rng"] = torch.get_rng_state()

    def on_val(trainer, loss):
        torch.rand(3)  # a validation that draws from the RNG
        return loss

    trainer = make(tmp_path, max_time=6, on_train=on_train, on_val=on_val)
    t0 = time.perf_counter()
    result = trainer.fit(train, val)
    elapsed = time.perf_counter() - t0
    row = result.partial
    assert set(row) == {"epoch", "train_loss", "val_loss", "lr", "seconds", "batches"}
    assert (row["epoch"], row["batches"], row["lr"]) == (2, 2, 0.05)
    assert 0 < row["seconds"] <= elapsed
    assert result.stop_message.startswith(
        "time budget of 6s used up in epoch 2 of 3, after 2 of 4 batches; validated there;"
    )
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["metrics"] == row and last["epoch"] == 1
    assert torch.equal(last["rng"]["torch"], seen["rng"])
    assert trainer.stop_checkpoint is not None and trainer.stop_checkpoint["metrics"] == row


def test_a_stop_worse_than_the_first_epoch_leaves_best_pt_to_that_epoch(tmp_path):
    train, val = data()
    metric = Scripted()
    kept = {}
    trainer = make(
        tmp_path,
        max_time=6,
        metrics={"s": metric},
        train_metrics=False,
        early_stopping=EarlyStopping("val_s"),
        callbacks=[lambda tr, row: kept.update({k: v.clone() for k, v in tr.model.state_dict().items()})],
    )
    metric.trainer = trainer
    result = trainer.fit(train, val)
    assert result.partial["val_s"] == 0.9 and (result.best_epoch, result.best_value) == (1, pytest.approx(0.1))
    best = read_checkpoint(tmp_path / "best.pt")
    assert "interrupted" not in best and best["metrics"] == result.history[0]
    assert all(torch.equal(best["state_dict"][k], kept[k]) for k in kept)
    assert read_checkpoint(tmp_path / "last.pt")["interrupted"]["best_written"] is False


def test_a_stop_between_checkpoint_epochs_writes_history_csv(tmp_path):
    """checkpoint_every=3 wrote nothing after epochs 1 and 2; the stop in epoch 3 writes both rows."""
    train, val = data()
    make(tmp_path, max_time=10, checkpoint_every=3).fit(train, val)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch,") and lines[1].startswith("1,") and lines[2].startswith("2,")


def test_a_non_finite_validation_at_a_budget_stop_names_its_epoch(tmp_path):
    train, val = data()
    trainer = make(
        tmp_path, max_time=6, on_val=lambda tr, loss: loss * math.nan if tr.interruption is not None else loss
    )
    with pytest.raises(
        NonFiniteLoss,
        match=r"^val_loss became nan in epoch 2 \(lr 0\.05\); the training loss is "
        r"finite, so the validation data hold values the model cannot score; "
        r"the last good checkpoint is .*last\.pt$",
    ) as caught:
        trainer.fit(train, val)
    assert caught.value.epoch == 2


# ----------------------------------------------------------------- progress and resume
def test_progress_lines_of_a_budget_stop_and_of_its_resume(tmp_path, capsys):
    """The cut epoch's kept line counts the batches trained; the resumed epoch's counts those before the stop too.
    A resumed run whose budget runs out with the epoch's last batch finishes that epoch and stops after it."""
    train, val = data()
    stopped = make(tmp_path, max_time=6, progress=True).fit(train, val)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("epoch 1/3  4 batches  ") and lines[1].startswith("epoch 2/3  2 batches  ")
    assert lines[2] == stopped.stop_message and len(lines) == 3
    resumed = make(tmp_path, max_time=2, progress=True).fit(train, val, resume=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("epoch 2/3  4 batches  ")
    assert (resumed.stop_reason, resumed.partial, resumed.epochs_run) == ("max_time", None, 2)
    assert resumed.stop_message.startswith("time budget of 2s used up after epoch 2 of 3;")
    assert lines[1] == resumed.stop_message and len(lines) == 2


def test_tensorboard_steps_continue_after_a_stop_inside_an_epoch(tmp_path):
    """5 batches an epoch, one step per 2 (3 steps an epoch); the stop after epoch 2's first step (step 4)."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    train, val = data(n=20)
    stopped = make(tmp_path, epochs=2, max_time=7, accumulate=2, tensorboard_dir=tmp_path / "tb").fit(train, val)
    assert stopped.partial["batches"] == 2
    make(tmp_path, epochs=2, accumulate=2, tensorboard_dir=tmp_path / "tb").fit(train, val, resume=True)
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("step/lr")] == [1, 2, 3, 4, 5, 6]


def test_a_resume_point_applies_to_its_own_epoch_only(tmp_path):
    """A dry run of a resume reads the stop's position; train_epoch of another epoch then trains all its batches."""
    train, val = data()
    make(tmp_path, max_time=6).fit(train, val)
    trainer = make(tmp_path, dry_run=True)
    with pytest.raises(DryRunComplete):
        trainer.fit(train, val, resume=True)
    trainer.ticks["n"] = 0
    trainer.train_epoch(train, 0)
    assert trainer.ticks["n"] == 4 and trainer.interruption is None


# ----------------------------------------------------------------- arguments and attributes
@pytest.mark.parametrize("accumulate", [0, -1, True, 2.0, "2"])
def test_accumulate_must_be_a_whole_number_of_at_least_one(accumulate):
    model = nn.Linear(1, 1)
    with pytest.raises(ValueError, match=rf"^accumulate must be a whole number >= 1, got {accumulate!r}$"):
        Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), accumulate=accumulate)


@pytest.mark.parametrize("max_time", ["soon", "0", -5, "10 minutes", float("nan")])
def test_a_bad_max_time_is_refused_in_one_line(max_time):
    model = nn.Linear(1, 1)
    with pytest.raises(ValueError) as caught:
        Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), max_time=max_time)
    assert str(caught.value) == (
        f"max_time must be a number of seconds > 0 or a duration such as 90s, 15m or 2h, got {max_time!r}"
    )


def test_no_interruption_and_no_stop_checkpoint_unless_the_budget_stopped_the_run(tmp_path):
    train, val = data()
    trainer = make(tmp_path, max_time=10**6)
    assert trainer.interruption is None and trainer.stop_checkpoint is None
    trainer.fit(train, val)
    assert trainer.interruption is None and trainer.stop_checkpoint is None
    stopped = make(tmp_path / "b", max_time=6)
    stopped.fit(train, val)
    assert stopped.interruption is not None and stopped.stop_checkpoint is not None


def test_train_epoch_on_its_own_with_a_budget_trains_every_batch():
    train, _ = data()
    trainer = make(max_time=100)
    row = trainer.train_epoch(train, 0)
    assert trainer.ticks["n"] == 4 and trainer.interruption is None and set(row) == {"train_loss"}


def test_a_threshold_stop_message_shows_the_value_that_reached_it():
    train, _ = data()
    result = make(early_stopping=EarlyStopping("train_loss", stopping_threshold=1e9)).fit(train)
    value = result.history[0]["train_loss"]
    assert result.stop_reason == "stopping_threshold"
    assert result.stop_message == (
        f"early stopping at epoch 1: train_loss = {value:.4g} reached the stopping "
        f"threshold (below 1e+09; best {value:.4g} at epoch 1)"
    )


# ----------------------------------------------------------------- the dry run's report
class Recorded(Unsized):
    """Batches with a length and set_epoch, as a DistributedSampler-driven loader has."""

    def __init__(self, batches):
        super().__init__(batches)
        self.epochs = []

    def __len__(self):
        return len(self.batches)

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


def dry(trainer, train, val=None):
    with pytest.raises(DryRunComplete) as done:
        trainer.fit(train, val)
    return done.value.report


def test_the_dry_run_tells_the_batches_their_epoch():
    train, val = data()
    batches = Recorded(train)
    report = dry(make(dry_run=True), batches, val)
    assert batches.epochs == [0] and report.train_batches == 4


def test_a_dry_run_without_training_batches_is_refused_in_one_line():
    with pytest.raises(
        TrainingError,
        match=r"^the training data hold no batch: nothing to train on; check the data "
        r"and its size$",
    ):
        dry(make(dry_run=True), [], [])


def test_a_dry_run_with_empty_validation_data_reports_no_validation():
    train, _ = data()
    report = dry(make(dry_run=True, early_stopping=EarlyStopping("train_loss")), train, [])
    assert (report.val, report.val_inputs, report.val_batches) == (None, None, 0)
    assert set(report.train) == {"train_loss"}


def test_the_dry_run_step_uses_this_batch_gradient_only_and_reports_its_time():
    """Gradients left on the model before the dry run do not enter its step."""
    train, val = data()
    trainer = make(dry_run=True, metrics={"s": Scripted()}, train_metrics=False)
    trainer.metrics["s"].trainer = trainer
    model = trainer.model
    x, y = next(iter(train))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    nn.functional.mse_loss(model(x), y).backward()
    want = {k: before[k] - 0.05 * p.grad for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.full_like(p, 100.0)  # stale gradients
    t0 = time.perf_counter()
    report = dry(trainer, train, val)
    elapsed = time.perf_counter() - t0
    for k, p in model.named_parameters():
        assert torch.allclose(p.detach(), want[k], atol=1e-6), k
    assert set(report.train) == {"train_loss"}  # train_metrics=False: no training metrics
    assert set(report.val) == {"val_loss", "val_s"}
    assert 0 < report.step_seconds <= elapsed


def test_the_best_pt_a_stop_keeps_for_the_resume_holds_no_older_stop(tmp_path):
    """A stop in the start_from_epoch warm-up leaves its own checkpoint as best.pt (no best yet), and the resume
    keeps it; the next stop, past a best that checkpoint_every=3 never wrote, keeps that best.pt in last.pt to put
    back, without the older stop's position inside it."""
    train, val = data()
    rule = {"early_stopping": EarlyStopping("val_loss", patience=None, start_from_epoch=1), "checkpoint_every": 3}
    make(tmp_path, epochs=6, max_time=2, **rule).fit(train, val)
    assert "interrupted" in read_checkpoint(tmp_path / "best.pt")
    result = make(tmp_path, epochs=6, max_time=8, **rule).fit(train, val, resume=True)
    assert result.partial is not None and (result.partial["epoch"], result.partial["batches"]) == (3, 2)
    stopped = read_checkpoint(tmp_path / "last.pt")["interrupted"]
    assert stopped["best_written"] and "interrupted" not in stopped["replaced_best"]
