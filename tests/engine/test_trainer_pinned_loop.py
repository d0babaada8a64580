"""Pins of the rewritten loop (fit -> train_epoch -> train_step) that the mutation run of trainer.py left open:
callbacks get the trainer at every event, a weight average (ema) is what validation sees and what fit returns,
amp on a CPU is the plain run, a second budget stop inside a resumed epoch counts the batches from the epoch's
start, the step count stays a whole number, and a stop draws no batch it does not train. Tiny models, in-process.
"""

from __future__ import annotations

import torch
from torch import nn

from torchlab import Callback, Trainer
from torchlab.data import TensorBatcher

W = torch.tensor([[1.0], [-2.0], [0.5]])


def data(n_train=16, batch=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + 8, 3, generator=g)
    y = x @ W + 0.1 * torch.randn(n_train + 8, 1, generator=g)
    return TensorBatcher((x[:n_train], y[:n_train]), batch), TensorBatcher((x[n_train:], y[n_train:]), 4)


def trainer(**options):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    return Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.05), progress=False, **options)


def weights(t):
    return {k: v.clone() for k, v in t.model.state_dict().items()}


class Record(Callback):
    """Every event, and whether it came with the trainer that runs it."""

    def __init__(self):
        self.events, self.trainers, self.steps = [], [], []

    def _saw(self, name, trainer):
        self.events.append(name)
        self.trainers.append(trainer)

    def on_fit_start(self, trainer):
        self._saw("fit_start", trainer)

    def on_epoch_start(self, trainer, epoch, batches, done):
        self._saw("epoch_start", trainer)

    def on_batch_end(self, trainer, loss):
        self._saw("batch_end", trainer)

    def on_step_end(self, trainer, step):
        self._saw("step_end", trainer)
        self.steps.append(step)

    def on_validation_start(self, trainer):
        self._saw("validation_start", trainer)

    def on_epoch_end(self, trainer, row):
        self._saw("epoch_end", trainer)

    def on_fit_end(self, trainer, result):
        self._saw("fit_end", trainer)


def test_every_callback_event_gets_the_trainer_that_runs_it():
    record = Record()
    t = trainer(epochs=1, callbacks=[record])
    train, val = data(n_train=8)
    t.fit(train, val)
    assert record.events == [
        "fit_start",
        "epoch_start",
        *["step_end", "batch_end"] * 2,
        "validation_start",
        "epoch_end",
        "fit_end",
    ]
    assert all(seen is t for seen in record.trainers)


def test_ema_validates_and_returns_the_average_of_the_steps_weights():
    train, val = data()
    plain, steps = trainer(epochs=2), []

    class Keep(Callback):
        def on_step_end(self, tr, step):
            steps.append(weights(tr))

    plain.callbacks = [Keep()]
    start = weights(plain)
    plain.fit(train, val)
    # the average by the formula of ema.py: d = min(decay, (1 + n) / (10 + n)) after n updates
    average = start
    for n, w in enumerate(steps):
        d = min(0.5, (1 + n) / (10 + n))
        average = {k: d * average[k] + (1 - d) * w[k] for k in w}

    t = trainer(epochs=2, ema=0.5)
    result = t.fit(train, val)
    final = weights(t)
    assert all(torch.allclose(final[k], average[k], atol=1e-6) for k in final)
    assert not all(torch.allclose(final[k], steps[-1][k], atol=1e-4) for k in final)  # not the training weights
    # the last epoch validated those averaged weights (what fit returns)
    assert abs(result.history[-1]["val_loss"] - t.evaluate(val)["val_loss"]) < 1e-6
    assert abs(result.history[-1]["val_loss"] - plain.evaluate(val)["val_loss"]) > 1e-4


def test_amp_on_a_cpu_is_the_plain_run():
    train, val = data()
    plain, amp = trainer(epochs=1), trainer(epochs=1, amp=True)
    plain.fit(train, val)
    amp.fit(train, val)
    assert amp.amp is True
    a, b = weights(plain), weights(amp)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_first_train_step_that_continues_a_window_averages_over_its_own_samples():
    train, _ = data()
    x, y = next(iter(train))
    opened, continued = trainer(accumulate=2), trainer(accumulate=2)
    opened.train_step(x, [y], opens=True, closes=True)
    continued.train_step(x, [y], opens=False, closes=True)  # a fresh trainer: no gradient to continue
    a, b = weights(opened), weights(continued)
    assert all(torch.allclose(a[k], b[k]) for k in a)


def budget_run(out, ticks, record, resume=False):
    """12 batches of 2 in one epoch, one step per 2 batches; the clock counts training batches, the budget is 3."""
    t = trainer(
        epochs=1,
        accumulate=2,
        max_time=3,
        clock=lambda: ticks["n"],
        checkpoint_dir=out,
        callbacks=[record],
    )

    class Tick(Callback):
        def on_batch_end(self, tr, loss):
            ticks["n"] += 1

    t.callbacks.append(Tick())
    train, _ = data(n_train=24, batch=2)
    return t.fit(train, resume=resume)


def test_a_second_stop_in_a_resumed_epoch_counts_its_batches_from_the_epochs_start(tmp_path):
    ticks = {"n": 0}
    first = budget_run(tmp_path, ticks, Record())
    assert first.stop_reason == "max_time" and first.partial["batches"] == 4
    record = Record()
    second = budget_run(tmp_path, ticks, record, resume=True)
    assert second.stop_reason == "max_time"
    assert second.partial["batches"] == 8
    assert "in epoch 1 of 1, after 8 of 12 batches; validated there" in second.stop_message
    # the resumed run numbers its optimizer steps on from the stop, as whole numbers
    assert record.steps == [3, 4]
    assert all(type(step) is int for step in record.steps)


class Stream:
    """12 batches of 2 whose inputs draw noise from the global RNG as each batch is made (an augmentation)."""

    def __init__(self, pulls):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(24, 3, generator=g)
        self.y = self.x @ W
        self.pulls = pulls

    def __len__(self):
        return 12

    def __iter__(self):
        for i in range(0, 24, 2):
            self.pulls.append(i // 2)
            yield self.x[i : i + 2] + 0.1 * torch.randn(2, 3), self.y[i : i + 2]


def test_a_budget_stop_draws_no_batch_it_does_not_train_and_the_resume_is_exact(tmp_path):
    ticks, pulls = {"n": 0}, []

    def run(out, max_time, resume=False):
        t = trainer(epochs=1, max_time=max_time, clock=lambda: ticks["n"], checkpoint_dir=out)

        class Tick(Callback):
            def on_batch_end(self, tr, loss):
                ticks["n"] += 1

        t.callbacks = [Tick()]
        return t, t.fit(Stream(pulls), resume=resume)

    straight, _ = run(tmp_path / "straight", None)
    ticks["n"], pulls[:] = 0, []
    _, stopped = run(tmp_path / "resumed", 3)
    assert stopped.partial["batches"] == 3
    assert pulls == [0, 1, 2]  # the batches trained, none more
    resumed, _ = run(tmp_path / "resumed", None, resume=True)
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
