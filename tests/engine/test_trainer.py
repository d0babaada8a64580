"""The Trainer: early stopping, restoring the best weights, the NaN guard, resume, history."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

import torchlab
from torchlab import EarlyStopping, Trainer
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.engine.metrics import Accuracy, Metric
from torchlab.errors import TrainingError


class Scripted(Metric):
    """A metric whose epoch value follows a fixed script (one value per evaluation)."""

    mode = "min"

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def batch_stats(self, output, target, *rest):
        return torch.tensor(0.0), torch.tensor(1.0)

    def compute(self, total, count):
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return value


def make_trainer(blobs, tmp_path, **kwargs):
    x, y = blobs
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    defaults = dict(metrics={"accuracy": Accuracy()}, epochs=6, checkpoint_dir=tmp_path, progress=False)
    defaults.update(kwargs)
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, **defaults)
    train = TensorBatcher((x[:240], y[:240]), 32, shuffle=True, seed=1)
    val = TensorBatcher((x[240:], y[240:]), 64)
    return trainer, train, val


def test_early_stopping_fires_at_expected_epoch_and_restores_best(blobs, tmp_path):
    # best at epoch 3 (0.5), then no improvement beyond min_delta for patience=3 epochs -> stop after epoch 6
    script = [0.9, 0.7, 0.5, 0.55, 0.499, 0.6, 0.1, 0.1]
    weights_per_epoch = []
    trainer, train, val = make_trainer(
        blobs,
        tmp_path,
        epochs=20,
        metrics={"crafted": Scripted(script)},
        train_metrics=False,
        early_stopping=EarlyStopping("val_crafted", "min", patience=3, min_delta=0.01),
        callbacks=[lambda tr, row: weights_per_epoch.append({k: v.clone() for k, v in tr.model.state_dict().items()})],
    )
    result = trainer.fit(train, val)
    assert result.epochs_run == 6
    assert result.stopped_early
    assert result.best_epoch == 3 and result.best_value == pytest.approx(0.5)
    final = trainer.model.state_dict()
    for key, value in weights_per_epoch[2].items():  # epoch 3 = index 2
        assert torch.equal(final[key], value)
    assert not torch.equal(final["0.weight"], weights_per_epoch[-1]["0.weight"])
    assert read_checkpoint(tmp_path / "best.pt")["epoch"] == 3
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 6


def test_early_stopping_max_mode_and_state_round_trip():
    es = EarlyStopping("val_accuracy", "max", patience=2)
    assert [es.update(v, i) for i, v in enumerate([0.5, 0.6, 0.6, 0.59])] == [True, True, False, False]
    assert es.should_stop and es.best == 0.6 and es.best_epoch == 1
    clone = EarlyStopping("val_accuracy", "max", patience=2)
    clone.load_state_dict(es.state_dict())
    assert clone.should_stop and clone.best_epoch == 1
    with pytest.raises(ValueError):
        EarlyStopping(mode="up")


def test_history_csv_and_metrics(blobs, tmp_path):
    trainer, train, val = make_trainer(blobs, tmp_path, epochs=4)
    result = trainer.fit(train, val)
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"} <= set(rows[0])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert result.last["val_accuracy"] > 0.9  # the blobs are separable


def test_nan_loss_stops_with_advice_and_keeps_last_good_checkpoint(blobs, tmp_path):
    calls = {"n": 0}
    steps_per_epoch = 8  # 240 samples / 32

    def loss_fn(output, target):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(output, target)
        return loss * float("nan") if calls["n"] > 2 * steps_per_epoch else loss

    trainer, train, val = make_trainer(blobs, tmp_path, epochs=5)
    trainer.loss_fn = loss_fn
    with pytest.raises(TrainingError, match="lower learning rate"):
        trainer.fit(train, None)
    checkpoint = read_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_continues_exactly(blobs, tmp_path):
    """6 epochs in one go == 3 epochs, a crash, then resume (one-cycle schedule, dropout-free, CPU)."""

    def run(out, crash_after=None, resume=False):
        x, y = blobs
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        opt = torch.optim.AdamW(model.parameters(), lr=0.05)
        train = TensorBatcher((x[:240], y[:240]), 32, shuffle=True, seed=3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=6 * len(train))

        def crash(tr, row):
            if crash_after is not None and row["epoch"] == crash_after:
                raise KeyboardInterrupt

        trainer = Trainer(
            model,
            nn.CrossEntropyLoss(),
            opt,
            epochs=6,
            scheduler=sched,
            scheduler_interval="batch",
            checkpoint_dir=out,
            progress=False,
            callbacks=[crash],
        )
        if crash_after is not None:
            with pytest.raises(KeyboardInterrupt):
                trainer.fit(train)
            return None
        trainer.fit(train, resume=resume)
        return model.state_dict(), trainer.history

    straight, history = run(tmp_path / "a")
    run(tmp_path / "b", crash_after=3)
    torch.manual_seed(123)  # a different global RNG state: resume must restore the saved one
    resumed, resumed_history = run(tmp_path / "b", resume=True)
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in resumed_history]


def test_batcher_covers_every_sample_once_per_epoch():
    x = torch.arange(103).float()
    batcher = TensorBatcher((x, x.long()), 10, shuffle=True, seed=7)
    batcher.set_epoch(4)
    seen = torch.cat([b[0] for b in batcher])
    assert len(batcher) == 11 and sorted(seen.tolist()) == list(range(103))
    batcher.set_epoch(5)
    assert not torch.equal(seen, torch.cat([b[0] for b in batcher]))
    assert len(TensorBatcher((x,), 10, drop_last=True)) == 10


def test_pick_device():
    assert torchlab.pick_device("cpu").type == "cpu"
    assert torchlab.pick_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(torchlab.DeviceError, match="unknown device"):
        torchlab.pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(torchlab.DeviceError, match="no CUDA GPU"):
            torchlab.pick_device("cuda:1")


def test_a_training_error_names_settings_by_field_and_words_them_as_flags_on_request():
    from torchlab.config import flag_name
    from torchlab.errors import FieldName, NonFiniteLoss, TorchlabError

    plain = TrainingError("the ranks disagree")
    assert (str(plain), plain.fields, plain.worded(flag_name)) == ("the ranks disagree", (), "the ranks disagree")
    error = TrainingError("lower ", FieldName("batch_size"), " or raise ", FieldName("grad_clip"), "")
    assert error.fields == ("batch_size", "grad_clip") and isinstance(error, TorchlabError)
    assert str(error) == error.args[0] == "lower batch_size or raise grad_clip"
    assert error.worded(flag_name) == "lower --batch-size or raise --grad-clip"
    assert error.worded(str.upper) == "lower BATCH_SIZE or raise GRAD_CLIP"
    loss = NonFiniteLoss("val_loss", float("inf"), 3, 0.25, ("use ", FieldName("lr")), checkpoint=None)
    assert (loss.quantity, loss.value, loss.epoch, loss.lr, loss.checkpoint) == (
        "val_loss",
        float("inf"),
        3,
        0.25,
        None,
    )
    assert str(loss) == "val_loss became inf in epoch 3 (lr 0.25); use lr" and isinstance(loss, TrainingError)
    other = loss.with_advice("fix ", FieldName("flip_sum"))
    assert (other.quantity, other.value, other.epoch, other.lr) == ("val_loss", float("inf"), 3, 0.25)
    assert other.fields == ("flip_sum",) and other.worded(flag_name).endswith("(lr 0.25); fix --flip-sum")
    assert loss.fields == ("lr",)  # the original is unchanged


def test_the_progress_bar_shows_the_batch_loss(blobs, capsys, monkeypatch):
    import torchlab.reporting.progress as progress

    monkeypatch.setattr(progress, "mode", lambda setting, stream: "bars")  # as on a terminal
    monkeypatch.setattr(progress, "LOSS_EVERY_SECONDS", 0.0)  # read the loss at every batch
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    x = torch.zeros(8, 1)
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=1, progress=True)
    trainer.fit(TensorBatcher((x, torch.full((8, 1), 2.0)), 4))  # (0 - 2)^2 in every batch
    assert "loss=4" in capsys.readouterr().err


def test_train_epoch_after_a_tensorboard_fit_logs_nothing_more(blobs, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    trainer, train, val = make_trainer(blobs, tmp_path, epochs=1, tensorboard_dir=tmp_path / "tb")
    trainer.fit(train, val)
    files = {p: p.stat().st_size for p in (tmp_path / "tb").rglob("*") if p.is_file()}
    row = trainer.train_epoch(train, 1)  # the logger was closed with the fit: no writes to it
    assert row["train_loss"] > 0 and files == {p: p.stat().st_size for p in (tmp_path / "tb").rglob("*") if p.is_file()}
