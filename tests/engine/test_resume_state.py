"""Resume restores every piece of training state: a run stopped after epoch 3 and resumed ends
with the same weights, history, best epoch and best.pt as the run that never stopped, for each
kind of learning-rate schedule the tasks use and for early stopping caught part-way."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchlab import EarlyStopping, Trainer
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint, save_checkpoint
from torchlab.engine.metrics import Metric
from torchlab.errors import CheckpointError

EPOCHS = 6
CRASH_AFTER = 3


class Crash(Exception):
    """Stands for a killed process: raised by a callback after an epoch's checkpoint is written."""


class Scripted(Metric):
    """A validation metric that follows a script, one value per epoch, keyed by the trainer's history
    (so a resumed run reads the same value for the same epoch)."""

    mode = "min"

    def __init__(self, script):
        self.script = script
        self.trainer = None

    def batch_stats(self, output, target, *rest):
        return torch.tensor(0.0), torch.tensor(1.0)

    def compute(self, total, count):
        return self.script[len(self.trainer.history)]


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 * torch.randn(40, 1, generator=g)
    return TensorBatcher((x[:30], y[:30]), 8, shuffle=True, seed=4), TensorBatcher((x[30:], y[30:]), 5)


SCHEDULES = {
    "step-per-epoch": (lambda opt, n: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.3), "epoch"),
    "onecycle-per-batch": (
        lambda opt, n: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=EPOCHS * n),
        "batch",
    ),
    "cosine-per-batch": (lambda opt, n: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS * n), "batch"),
    # patience 0 and a threshold no epoch meets: every epoch after the first one counts as a plateau
    "plateau": (
        lambda opt, n: torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=0, threshold=10.0, threshold_mode="abs"
        ),
        "epoch",
    ),
}


def run(out, schedule=None, script=None, patience=None, crash_after=None, resume=False, epochs=EPOCHS):
    """Train the small regression net; return (final weights, history, FitResult)."""
    train, val = data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler, interval = None, "epoch"
    if schedule:
        make, interval = SCHEDULES[schedule]
        scheduler = make(opt, len(train))
    metrics, es = {}, None
    if script is not None:
        metrics = {"s": Scripted(script)}
        es = EarlyStopping("val_s", "min", patience=patience)

    def crash(trainer, row):
        if crash_after is not None and row["epoch"] == crash_after:
            raise Crash

    trainer = Trainer(
        model,
        nn.MSELoss(),
        opt,
        metrics=metrics,
        train_metrics=False,
        epochs=epochs,
        scheduler=scheduler,
        scheduler_interval=interval,
        early_stopping=es,
        checkpoint_dir=out,
        progress=False,
        callbacks=[crash],
    )
    if script is not None:
        metrics["s"].trainer = trainer
    if crash_after is not None:
        with pytest.raises(Crash):
            trainer.fit(train, val)
        return None
    result = trainer.fit(train, val, resume=resume)
    return model.state_dict(), result


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_run(straight_dir, resumed_dir, straight, resumed):
    (w1, r1), (w2, r2) = straight, resumed
    for key in w1:
        assert torch.equal(w1[key], w2[key]), f"final weights differ at {key}"
    assert without_seconds(r1.history) == without_seconds(r2.history)
    assert (r1.best_epoch, r1.best_value, r1.epochs_run, r1.stopped_early) == (
        r2.best_epoch,
        r2.best_value,
        r2.epochs_run,
        r2.stopped_early,
    )
    best1, best2 = read_checkpoint(straight_dir / "best.pt"), read_checkpoint(resumed_dir / "best.pt")
    assert best1["epoch"] == best2["epoch"] and best1["best"] == best2["best"]
    for key, value in best1["state_dict"].items():
        assert torch.equal(value, best2["state_dict"][key]), f"best.pt differs at {key}"
    last1, last2 = read_checkpoint(straight_dir / "last.pt"), read_checkpoint(resumed_dir / "last.pt")
    assert last1["early_stopping"] == last2["early_stopping"]
    assert last1["scheduler"] == last2["scheduler"]


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_resume_with_each_schedule_equals_the_uninterrupted_run(tmp_path, schedule):
    straight = run(tmp_path / "a", schedule)
    run(tmp_path / "b", schedule, crash_after=CRASH_AFTER)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == CRASH_AFTER
    torch.manual_seed(123)  # a different global RNG: resume must bring back the saved one (Dropout)
    resumed = run(tmp_path / "b", schedule, resume=True)
    assert_same_run(tmp_path / "a", tmp_path / "b", straight, resumed)
    lrs = [row["lr"] for row in straight[1].history]
    assert len(set(lrs)) >= 4 and lrs[-1] < lrs[0]  # the schedule really moved


def test_plateau_state_is_what_lowers_the_lr_after_resume(tmp_path):
    straight = run(tmp_path / "a", "plateau")
    lrs = [row["lr"] for row in straight[1].history]
    assert lrs == [0.05 * 0.5**k for k in range(EPOCHS)]  # halved after every epoch but the first


# best at epoch 3 (0.5); waits 1, 2 after it; with patience 3 the run stops after epoch 6 of 10
EARLY_SCRIPT = [0.9, 0.7, 0.5, 0.6, 0.55, 0.52, 0.1, 0.1, 0.1, 0.1]


@pytest.mark.parametrize("crash_after", [4, 5])
def test_resume_part_way_through_early_stopping(tmp_path, crash_after):
    straight = run(tmp_path / "a", script=EARLY_SCRIPT, patience=3, epochs=10)
    result = straight[1]
    assert (result.epochs_run, result.stopped_early, result.best_epoch, result.best_value) == (6, True, 3, 0.5)
    run(tmp_path / "b", script=EARLY_SCRIPT, patience=3, epochs=10, crash_after=crash_after)
    saved = read_checkpoint(tmp_path / "b" / "last.pt")["early_stopping"]
    assert saved == {"best": 0.5, "best_epoch": 2, "wait": crash_after - 3, "stopped_epoch": None, "stop_reason": None}
    torch.manual_seed(7)
    resumed = run(tmp_path / "b", script=EARLY_SCRIPT, patience=3, epochs=10, resume=True)
    assert_same_run(tmp_path / "a", tmp_path / "b", straight, resumed)
    # restore_best_weights: both runs end on epoch 3's weights, which best.pt holds
    best = read_checkpoint(tmp_path / "b" / "best.pt")["state_dict"]
    assert all(torch.equal(resumed[0][k], v) for k, v in best.items())


def test_resuming_a_run_that_stopped_early_trains_no_further(tmp_path):
    run(tmp_path / "a", script=EARLY_SCRIPT, patience=3, epochs=10)
    before = (tmp_path / "a" / "last.pt").read_bytes()
    weights, result = run(tmp_path / "a", script=EARLY_SCRIPT, patience=3, epochs=10, resume=True)
    assert result.epochs_run == 6 and result.stopped_early and result.best_epoch == 3
    assert (tmp_path / "a" / "last.pt").read_bytes() == before
    best = read_checkpoint(tmp_path / "a" / "best.pt")["state_dict"]
    assert all(torch.equal(weights[k], v) for k, v in best.items())


def test_resume_from_an_explicit_path_and_refusals(tmp_path):
    run(tmp_path / "a", "step-per-epoch", crash_after=2)
    weights, result = run(tmp_path / "c", "step-per-epoch", resume=tmp_path / "a" / "last.pt")
    assert [row["epoch"] for row in result.history] == list(range(1, EPOCHS + 1))
    assert read_checkpoint(tmp_path / "c" / "last.pt")["epoch"] == EPOCHS
    (tmp_path / "a" / ".last.pt.abc.tmp").write_bytes(b"torn")
    run(tmp_path / "a", "step-per-epoch", resume=True)
    assert not list((tmp_path / "a").glob(".*.tmp"))  # a killed writer's leftovers are cleaned up

    model = nn.Linear(1, 1)
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, progress=False)
    batches = TensorBatcher((torch.zeros(4, 1), torch.zeros(4, 1)), 2)
    with pytest.raises(CheckpointError, match="resume needs a checkpoint folder"):
        trainer.fit(batches, resume=True)
    last = read_checkpoint(tmp_path / "a" / "last.pt")
    save_checkpoint({k: v for k, v in last.items() if k != "optimizer"}, tmp_path / "no_opt.pt")
    with pytest.raises(CheckpointError, match="holds no training state"):
        trainer.fit(batches, resume=tmp_path / "no_opt.pt")
    save_checkpoint({k: v for k, v in last.items() if k != "epoch"}, tmp_path / "no_epoch.pt")
    with pytest.raises(CheckpointError, match="holds no training state"):
        trainer.fit(batches, resume=tmp_path / "no_epoch.pt")


def test_optimizer_state_that_does_not_fit_is_a_checkpoint_error(tmp_path):
    run(tmp_path / "a", crash_after=1)
    last = read_checkpoint(tmp_path / "a" / "last.pt")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1))
    params = list(model.parameters())
    opt = torch.optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)  # two groups, not one
    trainer = Trainer(model, nn.MSELoss(), opt, epochs=2, progress=False)
    train, _ = data()
    with pytest.raises(CheckpointError, match="optimizer state that does not fit"):
        trainer.fit(train, resume=tmp_path / "a" / "last.pt")
    assert last["epoch"] == 1


def test_per_batch_schedule_needs_batches_with_a_length(tmp_path):
    run(tmp_path / "a", "cosine-per-batch", crash_after=1)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    trainer = Trainer(model, nn.MSELoss(), opt, epochs=2, scheduler=sched, scheduler_interval="batch", progress=False)
    train, _ = data()
    with pytest.raises(
        CheckpointError,
        match=f"^cannot resume from {tmp_path / 'a' / 'last.pt'} with a per-batch "
        "learning-rate schedule: the training batches have no length",
    ):
        trainer.fit(iter(list(train)), resume=tmp_path / "a" / "last.pt")


def test_resume_without_scheduler_history_or_best_pt(tmp_path):
    # a run with a schedule, resumed without one: the saved schedule is not needed
    run(tmp_path / "a", "step-per-epoch", crash_after=2)
    weights, result = run(tmp_path / "a", None, resume=True)
    assert [row["epoch"] for row in result.history] == list(range(1, EPOCHS + 1))
    assert [row["lr"] for row in result.history[2:]] == [result.history[1]["lr"]] * (EPOCHS - 2)  # no more steps
    # an older file without history: the resumed run's history starts at the resumed epoch
    run(tmp_path / "b", crash_after=2)
    last = read_checkpoint(tmp_path / "b" / "last.pt")
    save_checkpoint({k: v for k, v in last.items() if k != "history"}, tmp_path / "b" / "last.pt")
    weights, result = run(tmp_path / "b", resume=True)
    assert [row["epoch"] for row in result.history] == list(range(3, EPOCHS + 1))
    # best.pt gone (restore_best_weights on): the run resumes and keeps the best weights it sees from then on
    run(tmp_path / "c", script=EARLY_SCRIPT, patience=3, epochs=10, crash_after=2)
    (tmp_path / "c" / "best.pt").unlink()
    weights, result = run(tmp_path / "c", script=EARLY_SCRIPT, patience=3, epochs=10, resume=True)
    assert result.best_epoch == 3 and read_checkpoint(tmp_path / "c" / "best.pt")["epoch"] == 3


def test_resume_names_a_checkpoint_of_another_model_and_skips_unremovable_leftovers(tmp_path):
    run(tmp_path / "a", crash_after=1)
    (tmp_path / "a" / ".stuck.tmp").mkdir()  # a leftover that cannot be unlinked (a folder): left alone
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.1), nn.Linear(4, 1))  # 4 hidden units, not 8
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, progress=False)
    train, _ = data()
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'a' / 'last.pt'} does not fit model Sequential"):
        trainer.fit(train, resume=tmp_path / "a" / "last.pt")
    weights, result = run(tmp_path / "a", resume=True)
    assert result.epochs_run == EPOCHS and (tmp_path / "a" / ".stuck.tmp").is_dir()


def test_resume_without_best_pt_and_no_better_epoch_keeps_the_last_weights(tmp_path):
    """best.pt deleted and no epoch after the resume beats the saved best: nothing to restore, the run ends
    on its last weights (as with restore_best_weights off)."""
    script = [0.1, 0.5, 0.6, 0.7, 0.8, 0.9]  # the best is epoch 1, before the crash
    run(tmp_path / "a", script=script, patience=None, crash_after=2)
    (tmp_path / "a" / "best.pt").unlink()
    weights, result = run(tmp_path / "a", script=script, patience=None, resume=True)
    assert result.best_epoch == 1 and result.epochs_run == EPOCHS and not (tmp_path / "a" / "best.pt").exists()
    last = read_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    assert all(torch.equal(weights[k], v) for k, v in last.items())
