"""Exact values a user reads: the epoch loss in history.csv, eval mode in evaluation, gradient
clipping, the metrics (RMSE, accuracy), early stopping's bookkeeping and the checkpoint files
the Trainer writes. Tiny hand-computable models and data; every number is worked out here."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from torchlab import EarlyStopping, Trainer
from torchlab.cli.main import in_flags
from torchlab.data import TensorBatcher
from torchlab.engine import checkpoint as ckpt
from torchlab.engine import metrics
from torchlab.engine.batches import autocast, to_device
from torchlab.engine.checkpoint import CheckpointMeta, read_checkpoint
from torchlab.engine.checkpoint_writer import write_history_csv
from torchlab.engine.metrics import RMSE, Accuracy, BinaryAccuracy, Metric
from torchlab.engine.totals import Totals
from torchlab.errors import CheckpointError, TrainingError
from torchlab.runtime import distributed


def read_history(folder) -> list[dict[str, str]]:
    with open(folder / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def fixed_linear(weight: float, bias: float) -> nn.Linear:
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(weight)
        model.bias.fill_(bias)
    return model


def line_data(n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    return x, 2 * x + 1


# ------------------------------------------------------------------ epoch values
def test_epoch_loss_in_history_csv_is_weighted_by_batch_size(tmp_path):
    x, y = line_data(5)
    model = fixed_linear(0.3, 0.1)
    trainer = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.0),
        epochs=2,
        checkpoint_dir=tmp_path,
        progress=False,
    )
    train = TensorBatcher((x, y), 3)  # batches of 3 and 2 samples
    val = TensorBatcher((x[:3], y[:3]), 2)  # batches of 2 and 1
    trainer.fit(train, val)
    pred = 0.3 * x + 0.1
    sq = ((pred - y) ** 2).squeeze(1)
    # the batch losses (float32) summed in float64, weighted by the batch sizes
    want_train = (3 * float(sq[:3].mean()) + 2 * float(sq[3:].mean())) / 5
    want_val = (2 * float(sq[:2].mean()) + 1 * float(sq[2])) / 3
    assert want_train == pytest.approx(float(sq.double().mean()), rel=1e-6)  # the mean over samples
    assert want_train != pytest.approx((float(sq[:3].mean()) + float(sq[3:].mean())) / 2)  # not a mean of batch means
    rows = read_history(tmp_path)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for row in rows:
        assert float(row["train_loss"]) == pytest.approx(want_train, rel=1e-12)
        assert float(row["val_loss"]) == pytest.approx(want_val, rel=1e-12)
        assert float(row["lr"]) == 0.0
        assert 0 <= float(row["seconds"]) < 60  # this epoch's wall time
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]


class ModeRecorder(nn.Module):
    """Linear layer + Dropout that records whether each forward call ran in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = fixed_linear(1.0, 0.0)
        self.dropout = nn.Dropout(0.5)
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        return self.dropout(self.linear(x))


def test_evaluation_runs_in_eval_mode_and_training_in_train_mode():
    x, y = line_data(4)
    model = ModeRecorder()
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=2, progress=False)
    result = trainer.fit(TensorBatcher((x, y), 2), TensorBatcher((x, y), 4))
    # per epoch: two training batches (train mode), one validation batch (eval mode); epoch 2 trains again
    assert model.modes == [True, True, False, True, True, False]
    # Dropout is off in evaluation: the validation loss is the deterministic one, (x - (2x + 1))^2 averaged
    assert result.history[0]["val_loss"] == pytest.approx(float(((x + 1) ** 2).mean()))
    assert result.history[1]["val_loss"] == result.history[0]["val_loss"]


def test_batchnorm_evaluates_with_running_statistics():
    torch.manual_seed(0)
    x = torch.randn(16, 3) * 4 + 2
    y = torch.randn(16, 1)
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 1))
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=1, progress=False)
    val = TensorBatcher((x[:4], y[:4]), 4)
    result = trainer.fit(TensorBatcher((x, y), 8), val)
    model.eval()
    with torch.no_grad():
        want = float(nn.functional.mse_loss(model(x[:4]), y[:4]))
        model.train()
        batch_stats = float(nn.functional.mse_loss(model(x[:4]), y[:4]))
    assert result.history[0]["val_loss"] == pytest.approx(want, rel=1e-6)
    assert abs(want - batch_stats) > 1e-3  # the two modes really differ on this data


@pytest.mark.parametrize("clip, want", [(5.0, [3.0, 4.0]), (None, [60.0, 80.0]), (1000.0, [60.0, 80.0])])
def test_gradient_clipping_caps_the_step_norm(clip, want):
    # loss (w.x - 10)^2 at w = 0, x = (3, 4): gradient -2 * 10 * (3, 4) = (-60, -80), norm 100
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    x, y = torch.tensor([[3.0, 4.0]]), torch.tensor([[10.0]])
    trainer = Trainer(
        model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=1.0), epochs=1, grad_clip=clip, progress=False
    )
    trainer.fit(TensorBatcher((x, y), 1))
    assert model.weight.detach().squeeze(0).tolist() == pytest.approx(want, rel=1e-6)


# ------------------------------------------------------------------------- metrics
def test_rmse_takes_the_square_root_and_honors_mask_and_scale():
    out = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 4.0]])  # squared errors 0, 4, 9, 0
    mask = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    metric = RMSE()
    s, c = metric.batch_stats(out, target)
    assert (float(s), float(c)) == (13.0, 4.0)
    assert metric.compute(float(s), float(c)) == pytest.approx(math.sqrt(13 / 4))
    s, c = metric.batch_stats(out, target, mask)
    assert (float(s), float(c)) == (4.0, 3.0)  # the masked 9 is not counted, nor its sample
    assert metric.compute(float(s), float(c)) == pytest.approx(math.sqrt(4 / 3))
    s, c = RMSE(scale=2.0).batch_stats(out, target)
    assert (float(s), float(c)) == (52.0, 4.0)
    assert RMSE.mode == "min" and Accuracy.mode == "max" and Metric.mode == "max"
    assert RMSE().compute(0.0, 0.0) == 0.0


def test_masked_rmse_in_history_over_unequal_batches():
    out_target = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([[1.0, 2.0], [3.0, 100.0], [4.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])

    class Zero(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return x * self.w

    def masked_loss(output, target, mask):
        return ((output - target) ** 2 * mask).sum() / mask.sum()

    model = Zero()
    trainer = Trainer(
        model,
        masked_loss,
        torch.optim.SGD(model.parameters(), lr=0.0),
        metrics={"rmse": RMSE()},
        epochs=1,
        train_metrics=False,
        progress=False,
    )
    result = trainer.fit(TensorBatcher((out_target, target, mask), 2), TensorBatcher((out_target, target, mask), 2))
    # labeled squared errors 1, 4, 9, 16 (the 100 is masked): sqrt(30 / 4)
    assert result.history[0]["val_rmse"] == pytest.approx(math.sqrt(30 / 4))
    assert "train_rmse" not in result.history[0]


def test_binary_accuracy_threshold_is_zero_for_logits():
    logits = torch.tensor([[0.0], [-1e-6], [2.0], [-3.0], [1e-6], [0.5]])
    target = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    correct, count = BinaryAccuracy().batch_stats(logits, target)
    assert int(correct) == 4 and int(count) == 6  # 0 -> class 1, -1e-6 -> class 0; -3 and 1e-6 are wrong
    assert BinaryAccuracy().compute(4.0, 6.0) == pytest.approx(2 / 3)
    assert metrics.binary_accuracy(logits, target) == pytest.approx(4 / 6)
    assert metrics.binary_accuracy(logits.reshape(-1), target.long()) == pytest.approx(4 / 6)


def test_whole_set_metrics():
    scores = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.1, 0.9]])
    target = torch.tensor([1.0, 1.0, 0.0, 1.0])  # float labels are cast: arg-max 1, 0, 0 (first of a tie), 1
    assert metrics.accuracy(scores, target) == 0.75
    assert metrics.nll(scores, target) == pytest.approx(
        -(math.log(0.8) + math.log(0.4) + math.log(0.5) + math.log(0.9)) / 4
    )
    assert metrics.nll(torch.tensor([[1.0, 0.0]]), torch.tensor([1])) == pytest.approx(-math.log(1e-12))  # clamped
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    truth = np.array([[1.0, 0.0], [np.nan, 4.0]])  # NaN: unlabeled
    mask = np.array([[1.0, 1.0], [0.0, 1.0]])
    assert metrics.masked_rmse(pred, truth, mask) == pytest.approx(math.sqrt(4 / 3))
    assert metrics.masked_rmse(
        torch.tensor(pred), torch.tensor(np.nan_to_num(truth)), torch.ones(2, 2)
    ) == pytest.approx(math.sqrt((4 + 9) / 4))
    assert metrics.masked_rmse(pred, truth, np.zeros((2, 2))) == 0.0  # nothing labeled: 0, not NaN
    assert metrics.masked_rmse([[0.0]], [[0.5]], [[1.0]]) == 0.5
    # float32 predictions are summed in float64: 1e8 + 0.25 would round to 1e8 in float32
    big = np.array([10000.0, 0.5], dtype=np.float32)
    assert metrics.masked_rmse(big, np.zeros(2, np.float32), np.ones(2, np.float32)) == pytest.approx(
        math.sqrt((1e8 + 0.25) / 2), rel=1e-13
    )


def test_accuracy_counts_arg_max_over_batches():
    logits = torch.tensor([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    correct, count = Accuracy().batch_stats(logits, torch.tensor([1, 1, 2]))
    assert int(correct) == 2 and int(count) == 3
    assert Metric().compute(6.0, 4.0) == 1.5 and Metric().compute(0.0, 0.0) == 0.0
    assert Metric().compute(0.75, 1.0) == 0.75 and RMSE().compute(4.0, 1.0) == 2.0  # exact for one sample
    with pytest.raises(NotImplementedError):
        Metric().batch_stats(logits, torch.tensor([1, 1, 2]))


def test_train_accuracy_is_weighted_over_unequal_batches():
    # the model always predicts class 0: correct for the samples labeled 0
    x = torch.zeros(5, 1)
    y = torch.tensor([0, 0, 1, 0, 1])  # batches [0, 0, 1] (2 right) and [0, 1] (1 right): 3 of 5
    model = nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 0.0]))
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.0),
        metrics={"accuracy": Accuracy()},
        epochs=1,
        progress=False,
    )
    result = trainer.fit(TensorBatcher((x, y), 3), TensorBatcher((x, y), 2))
    assert result.history[0]["train_accuracy"] == pytest.approx(0.6)
    assert result.history[0]["val_accuracy"] == pytest.approx(0.6)


# ------------------------------------------------------------------ early stopping
def test_wait_resets_on_improvement():
    es = EarlyStopping("val_loss", "min", patience=2)
    results = [es.update(v, i) for i, v in enumerate([1.0, 1.1, 0.9, 1.0])]
    assert results == [True, False, True, False]
    assert es.wait == 1 and not es.should_stop and es.best == 0.9 and es.best_epoch == 2
    es.update(1.0, 4)
    assert es.wait == 2 and es.should_stop and es.stopped_epoch == 4


def test_min_delta_in_max_and_min_modes():
    es = EarlyStopping("val_accuracy", "max", patience=5, min_delta=0.1)
    assert [es.update(v, i) for i, v in enumerate([0.5, 0.55, 0.6, 0.61])] == [True, False, False, True]
    assert es.best == 0.61 and es.best_epoch == 3 and es.wait == 0
    es = EarlyStopping("val_loss", "min", patience=5, min_delta=0.25)
    assert [es.update(v, i) for i, v in enumerate([1.0, 0.75, 0.74])] == [True, False, True]
    assert es.best == 0.74 and es.best_epoch == 2
    plain = EarlyStopping("val_accuracy", "max", patience=5)
    assert [plain.update(v, i) for i, v in enumerate([0.5, 0.5, 0.51, 0.4])] == [True, False, True, False]


def test_patience_zero_and_none():
    es = EarlyStopping("val_loss", "min", patience=0)
    es.update(1.0, 0)
    assert not es.should_stop
    es.update(1.0, 1)
    assert es.should_stop and es.stopped_epoch == 1
    never = EarlyStopping("val_loss", "min", patience=None)
    for i in range(50):
        never.update(1.0 + i, i)
    assert not never.should_stop and never.wait == 49 and never.best == 1.0 and never.best_epoch == 0


def test_early_stopping_arguments_and_state():
    fresh = EarlyStopping()
    assert (fresh.monitor, fresh.mode, fresh.patience, fresh.min_delta, fresh.restore_best_weights) == (
        "val_loss",
        "min",
        10,
        0.0,
        True,
    )
    assert math.isnan(fresh.best) and fresh.best_epoch == -1 and fresh.wait == 0 and fresh.stopped_epoch is None
    assert fresh.improves(1e300) and fresh.improves(-1e300)
    for bad in (dict(mode="up"), dict(patience=-1), dict(min_delta=-0.1)):
        with pytest.raises(ValueError):
            EarlyStopping(**bad)
    EarlyStopping(patience=0, min_delta=0.0, mode="max")  # the boundaries are allowed
    es = EarlyStopping("val_loss", "min", patience=3)
    for i, v in enumerate([2.0, 1.0, 1.5, 1.6]):
        es.update(v, i)
    state = es.state_dict()
    assert state == {"best": 1.0, "best_epoch": 1, "wait": 2, "stopped_epoch": None, "stop_reason": None}
    clone = EarlyStopping("val_loss", "min", patience=3)
    clone.load_state_dict({**state, "best": 1, "stopped_epoch": 7, "stop_reason": "stopping_threshold"})
    assert clone.state_dict() == {
        "best": 1.0,
        "best_epoch": 1,
        "wait": 2,
        "stopped_epoch": 7,
        "stop_reason": "stopping_threshold",
    }
    assert type(clone.best) is float and clone.should_stop
    clone.load_state_dict({"best": "2.5", "best_epoch": "3", "wait": "1"})  # older files: no stopped_epoch
    assert (clone.best, clone.best_epoch, clone.wait, clone.stopped_epoch, clone.stop_reason) == (2.5, 3, 1, None, None)
    clone.load_state_dict({"best": 2.5, "best_epoch": 3, "wait": 1, "stopped_epoch": 4})  # a stop without a reason
    assert clone.stop_reason == "patience"  # was patience's: the only rule there was


# ------------------------------------------------------------ checkpoint files
def _scripted_trainer(tmp_path, script, **kwargs):
    """A Trainer whose validation metric follows `script`, one value per epoch (keyed by the epoch)."""

    class Scripted(Metric):
        mode = "min"

        def batch_stats(self, output, target, *rest):
            return torch.tensor(0.0), torch.tensor(1.0)

        def compute(self, total, count):
            return script[len(trainer.history)]

    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    trainer = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        metrics={"s": Scripted()},
        train_metrics=False,
        checkpoint_dir=tmp_path,
        progress=False,
        early_stopping=EarlyStopping("val_s", "min", patience=None),
        **kwargs,
    )
    x = torch.randn(8, 2)
    data = TensorBatcher((x, x.sum(1, keepdim=True)), 4)
    return trainer, data


def test_best_pt_is_renamed_before_last_pt_and_only_on_improvement(tmp_path, monkeypatch):
    renamed: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(
        ckpt.os, "replace", lambda src, dst: (renamed.append(os.path.basename(dst)), real_replace(src, dst))[1]
    )
    trainer, data = _scripted_trainer(tmp_path, [3.0, 2.0, 2.5], epochs=3)
    trainer.fit(data, data)
    assert renamed == ["best.pt", "last.pt", "history.csv"] * 2 + ["last.pt", "history.csv"]
    best, last = read_checkpoint(tmp_path / "best.pt"), read_checkpoint(tmp_path / "last.pt")
    assert best["epoch"] == 2 and last["epoch"] == 3
    assert best["best"] == last["best"] == {"monitor": "val_s", "mode": "min", "value": 2.0, "epoch": 2}
    assert last["metrics"] == last["history"][-1] and last["metrics"]["val_s"] == 2.5
    assert [row["epoch"] for row in last["history"]] == [1, 2, 3] and last["epochs"] == 3
    assert last["early_stopping"] == {
        "best": 2.0,
        "best_epoch": 1,
        "wait": 1,
        "stopped_epoch": None,
        "stop_reason": None,
    }
    assert last["world_size"] == 1 and last["task"] == "custom" and last["model"]["name"] == "Linear"
    assert last["scheduler"] is None and set(last["optimizer"]) == {"state", "param_groups"}
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_checkpoint_every_writes_every_nth_epoch_and_the_last(tmp_path, monkeypatch):
    renamed: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(
        ckpt.os, "replace", lambda src, dst: (renamed.append(os.path.basename(dst)), real_replace(src, dst))[1]
    )
    meta = {"task": "toy", "model_name": "line", "model_kwargs": {"k": 1}, "note": "kept"}
    trainer, data = _scripted_trainer(
        tmp_path, [5.0, 4.0, 3.0, 3.5, 3.6], epochs=5, checkpoint_every=2, checkpoint_meta=meta
    )
    trainer.fit(data, data)
    # epoch 2 (improved), epoch 4 (not improved), epoch 5 (the last)
    assert renamed == ["best.pt", "last.pt", "history.csv", "last.pt", "history.csv", "last.pt", "history.csv"]
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 5 and read_checkpoint(tmp_path / "best.pt")["epoch"] == 2
    assert last["task"] == "toy" and last["model"] == {"name": "line", "class": "Linear", "kwargs": {"k": 1}}
    assert last["note"] == "kept" and "model_name" not in last
    assert meta == {"task": "toy", "model_name": "line", "model_kwargs": {"k": 1}, "note": "kept"}  # not consumed
    assert trainer.checkpoint_meta == CheckpointMeta("toy", "line", {"k": 1}, extra={"note": "kept"})
    none_dir = tmp_path / "none"
    trainer, data = _scripted_trainer(none_dir, [1.0, 0.5], epochs=2, checkpoint_every=0)
    trainer.fit(data, data)
    assert not none_dir.exists()
    with pytest.raises(ValueError, match="checkpoint_every"):
        _scripted_trainer(tmp_path, [1.0], checkpoint_every=-1)


def test_early_stop_writes_its_last_epoch_and_restores_best(tmp_path):
    trainer, data = _scripted_trainer(tmp_path, [3.0, 1.0, 2.0, 2.0, 0.0, 0.0], epochs=6, checkpoint_every=10)
    trainer.early_stopping = EarlyStopping("val_s", "min", patience=2)
    seen = []
    trainer.callbacks.append(lambda tr, row: seen.append({k: v.clone() for k, v in tr.model.state_dict().items()}))
    result = trainer.fit(data, data)
    assert (result.epochs_run, result.stopped_early, result.best_epoch, result.best_value) == (4, True, 2, 1.0)
    assert result.checkpoint_dir == tmp_path and result.last == result.history[-1]
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 4  # written although 4 is no multiple of 10
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in seen[1].items())  # epoch 2's weights
    assert not torch.equal(trainer.model.weight, seen[3]["weight"])


def test_atomic_write_links_fall_back_to_copies_and_modes(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError("no hard links here")

    monkeypatch.setattr(ckpt.os, "link", no_links)
    ckpt.atomic_write_bytes(tmp_path / "last.pt", b"abc", also=(tmp_path / "best.pt",))
    assert (tmp_path / "last.pt").read_bytes() == (tmp_path / "best.pt").read_bytes() == b"abc"
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "last.pt"]
    umask = os.umask(0o002)
    try:
        ckpt.atomic_write_text(tmp_path / "h.csv", "a,b\n")
    finally:
        os.umask(umask)
    assert (tmp_path / "h.csv").read_text() == "a,b\n"
    assert (tmp_path / "h.csv").stat().st_mode & 0o777 == 0o664  # what open() would give, not mkstemp's 0o600


def test_atomic_write_fsyncs_only_when_durable(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(ckpt.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    ckpt.atomic_write_bytes(tmp_path / "a", b"1", durable=False)
    assert synced == []
    ckpt.atomic_write_bytes(tmp_path / "a", b"2")
    assert len(synced) == 2  # the file, then its folder
    assert (tmp_path / "a").read_bytes() == b"2"


def test_failed_final_rename_leaves_no_temporary_files(tmp_path, monkeypatch):
    (tmp_path / "last.pt").write_bytes(b"old")
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == "last.pt":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_write_bytes(tmp_path / "last.pt", b"new", also=(tmp_path / "best.pt",))
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "last.pt"]
    assert (tmp_path / "last.pt").read_bytes() == b"old" and (tmp_path / "best.pt").read_bytes() == b"new"

    def replace_twin(src, dst):
        if os.path.basename(dst) == "best.pt":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace_twin)
    with pytest.raises(OSError):
        ckpt.atomic_write_bytes(tmp_path / "x.pt", b"x", also=(tmp_path / "best.pt",))
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "last.pt"]  # neither the temporary file nor its twin


def test_add_metrics_merges_and_skips_missing_files(tmp_path):
    import numpy as np

    model = nn.Linear(1, 1)
    ckpt.save_checkpoint(
        ckpt.make_checkpoint(
            task="t", model_name="m", model=model, model_kwargs={}, metrics={"val_loss": 1.0, "test_accuracy": 0.1}
        ),
        tmp_path / "best.pt",
    )
    ckpt.add_metrics(tmp_path / "best.pt", {"test_accuracy": 0.5, "n": np.int64(3)})
    merged = read_checkpoint(tmp_path / "best.pt")["metrics"]
    assert merged == {"val_loss": 1.0, "test_accuracy": 0.5, "n": 3}
    ckpt.add_metrics(tmp_path / "nope.pt", {"a": 1})
    assert not (tmp_path / "nope.pt").exists()


def test_plain_and_unwrap():
    import numpy as np

    out = ckpt.plain(
        {1: (np.float32(0.5), np.arange(2)), ("a", 1): None, "p": ckpt.Path("x"), "d": torch.device("cpu")}
    )
    assert out[1][0] == 0.5 and type(out[1][0]) is float and torch.equal(out[1][1], torch.tensor([0, 1]))
    assert out["('a', 1)"] is None and out["p"] == "x" and out["d"] == "cpu"
    with pytest.raises(TypeError, match="cannot hold object"):
        ckpt.plain(object())
    inner = nn.Linear(1, 1)

    class Compiled(nn.Module):  # what torch.compile returns: the module as _orig_mod
        def __init__(self):
            super().__init__()
            self._orig_mod = inner

    class Wrapper(nn.Module):  # what DistributedDataParallel is: the module as .module
        def __init__(self):
            super().__init__()
            self.module = Compiled()

    assert ckpt._unwrap(Wrapper()) is inner
    saved = ckpt.make_checkpoint(task="t", model_name="m", model=Wrapper(), model_kwargs={"a": 1})
    assert saved["model"] == {"name": "m", "class": "Linear", "kwargs": {"a": 1}}
    assert set(saved["state_dict"]) == {"weight", "bias"}
    assert saved["format"] == "torchlab-checkpoint" and saved["format_version"] == 1
    import torchlab

    assert saved["versions"] == {"torch": str(torch.__version__), "torchlab": torchlab.__version__}


def test_load_drops_heavy_state_and_names_the_path(tmp_path):
    import torchlab
    from torchlab.models import build_model

    torch.manual_seed(0)
    model = build_model("digit-mlp", hidden=4)
    extra = {name: {"x": 1} for name in ("optimizer", "scheduler", "rng", "early_stopping", "best_state_dict")}
    ckpt.save_checkpoint(
        ckpt.make_checkpoint(
            task="digit-mlp", model_name="digit-mlp", model=model, model_kwargs={"hidden": 4}, epoch=2, **extra
        ),
        tmp_path / "m.pt",
    )
    loaded, meta = torchlab.load(tmp_path / "m.pt")
    assert not set(extra) & set(meta) and "state_dict" not in meta
    assert meta["path"] == str(tmp_path / "m.pt") and meta["epoch"] == 2
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_state_that_does_not_fit_names_the_source():
    with pytest.raises(CheckpointError, match=r"^run\.pt does not fit model Linear: .*size mismatch"):
        ckpt.load_state_into(nn.Linear(2, 1), {"weight": torch.zeros(1, 3), "bias": torch.zeros(1)}, source="run.pt")
    with pytest.raises(CheckpointError, match=r"^checkpoint does not fit model Linear: Missing key"):
        ckpt.load_state_into(nn.Linear(2, 1), {"weight": torch.zeros(1, 2)})


def test_newer_format_and_incomplete_checkpoints_are_refused(tmp_path):
    good = ckpt.make_checkpoint(task="t", model_name="m", model=nn.Linear(1, 1), model_kwargs={})
    torch.save({**good, "format_version": 2}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer torchlab"):
        read_checkpoint(tmp_path / "new.pt")
    torch.save({**good, "format_version": 1}, tmp_path / "same.pt")
    assert read_checkpoint(tmp_path / "same.pt")["task"] == "t"
    for key in ckpt.REQUIRED_KEYS[1:]:
        torch.save({k: v for k, v in good.items() if k != key}, tmp_path / "part.pt")
        with pytest.raises(CheckpointError, match=f"incomplete torchlab checkpoint \\(missing {key}\\)"):
            read_checkpoint(tmp_path / "part.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        read_checkpoint(tmp_path)


# -------------------------------------------------------------------- the rest
def test_history_csv_has_the_union_of_columns_in_order(tmp_path):
    write_history_csv([{"epoch": 1, "a": 0.5}, {"epoch": 2, "b": 1.5, "a": 0.25}], tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().splitlines() == ["epoch,a,b", "1,0.5,", "2,0.25,1.5"]
    write_history_csv([], tmp_path / "empty.csv")
    assert not (tmp_path / "empty.csv").exists()


def test_epoch_scheduler_lr_in_history():
    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.8)
    trainer = Trainer(
        model,
        nn.MSELoss(),
        opt,
        epochs=3,
        progress=False,
        scheduler=torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
    )
    result = trainer.fit(TensorBatcher((x, y), 4))
    assert [row["lr"] for row in result.history] == [0.4, 0.2, 0.1]  # the lr after each epoch's step


def test_plateau_scheduler_follows_the_monitor_not_the_train_loss():
    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    fed: list[float] = []
    real_step = plateau.step
    plateau.step = lambda value: (fed.append(value), real_step(value))[1]
    val_y = y + 100
    trainer = Trainer(model, nn.MSELoss(), opt, epochs=2, progress=False, scheduler=plateau)
    result = trainer.fit(TensorBatcher((x, y), 4), TensorBatcher((x, val_y), 4))
    assert fed == [row["val_loss"] for row in result.history]
    model = fixed_linear(0.0, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    fed.clear()
    real_step = plateau.step
    plateau.step = lambda value: (fed.append(value), real_step(value))[1]
    result = Trainer(model, nn.MSELoss(), opt, epochs=2, progress=False, scheduler=plateau).fit(
        TensorBatcher((x, y), 4)
    )
    assert fed == [row["train_loss"] for row in result.history]  # no validation data: the training loss


def test_per_batch_scheduler_steps_once_per_batch():
    x, y = line_data(6)
    model = fixed_linear(0.0, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    result = Trainer(
        model, nn.MSELoss(), opt, epochs=2, progress=False, scheduler=sched, scheduler_interval="batch"
    ).fit(TensorBatcher((x, y * 0), 2))
    assert [row["lr"] for row in result.history] == [0.125, 0.015625]  # 3 steps per epoch
    with pytest.raises(ValueError, match="scheduler_interval"):
        Trainer(model, nn.MSELoss(), opt, scheduler_interval="step")


def test_monitor_and_validation_errors():
    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    data = TensorBatcher((x, y), 4)
    with pytest.raises(ValueError, match="monitors 'val_loss' but no validation data"):
        Trainer(model, nn.MSELoss(), opt, epochs=1, progress=False, early_stopping=EarlyStopping("val_loss")).fit(data)
    with pytest.raises(ValueError, match=r"monitors 'train_rmse', which is not among \['epoch', 'lr'"):
        Trainer(model, nn.MSELoss(), opt, epochs=1, progress=False, early_stopping=EarlyStopping("train_rmse")).fit(
            data
        )
    default = Trainer(model, nn.MSELoss(), opt, epochs=2, progress=False)
    result = default.fit(data)  # no validation: the default tracker follows train_loss, never stops
    assert default.early_stopping.monitor == "train_loss" and default.early_stopping.patience is None
    assert not default.early_stopping.restore_best_weights
    assert result.epochs_run == 2 and not result.stopped_early and result.best_epoch == 1
    with_val = Trainer(model, nn.MSELoss(), opt, epochs=1, progress=False)
    with_val.fit(data, data)
    assert with_val.early_stopping.monitor == "val_loss"


def test_non_finite_loss_message_names_epoch_lr_and_last_checkpoint(tmp_path):
    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += 1
        loss = nn.functional.mse_loss(out, target)
        return loss + float("inf") if calls["n"] > 2 else loss  # finite gradients, infinite loss

    trainer = Trainer(
        model, loss_fn, torch.optim.SGD(model.parameters(), lr=0.001), epochs=3, checkpoint_dir=tmp_path, progress=False
    )
    with pytest.raises(TrainingError) as info:
        trainer.fit(TensorBatcher((x, y), 2))
    error = info.value
    assert (error.quantity, error.value, error.epoch, error.lr) == ("train_loss", math.inf, 2, 0.001)
    assert error.checkpoint == tmp_path / "last.pt" and error.fields == ("lr", "grad_clip")
    assert str(error) == (
        f"train_loss became inf in epoch 2 (lr 0.001); try a lower learning rate (lr) or "
        "gradient clipping (grad_clip); the last good checkpoint is "
        f"{tmp_path / 'last.pt'}"
    )
    assert in_flags(error) == (
        f"train_loss became inf in epoch 2 (lr 0.001); try a lower learning rate (--lr) or "
        "gradient clipping (--grad-clip); the last good checkpoint is "
        f"{tmp_path / 'last.pt'}"
    )
    model = fixed_linear(0.0, 0.0)
    calls["n"] = 0
    trainer = Trainer(model, loss_fn, torch.optim.SGD(model.parameters(), lr=0.5), epochs=3, progress=False)
    with pytest.raises(TrainingError, match=r"in epoch 2 \(lr 0.5\); try .*clip\)$"):
        trainer.fit(TensorBatcher((x, y), 2))


def test_set_epoch_reaches_batcher_and_samplers():
    class Recorder:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    class EpochSampler(Recorder):
        def __iter__(self):
            return iter(range(4))

        def __len__(self):
            return 4

    x, y = line_data(4)
    sampler = EpochSampler()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2, sampler=sampler)
    model = fixed_linear(0.0, 0.0)
    Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=3, progress=False).fit(loader)
    assert sampler.epochs == [0, 1, 2]
    batcher = TensorBatcher((x, y), 2, shuffle=True)
    Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=2, progress=False).fit(batcher)
    assert batcher.epoch == 1


def test_plateau_scheduler_with_a_missing_monitor_is_the_monitor_error():
    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    trainer = Trainer(
        model,
        nn.MSELoss(),
        opt,
        epochs=2,
        progress=False,
        scheduler=plateau,
        early_stopping=EarlyStopping("train_rmse"),
    )
    with pytest.raises(ValueError, match="monitors 'train_rmse', which is not among"):
        trainer.fit(TensorBatcher((x, y), 4))
    assert plateau.best == pytest.approx(float(((x * 2 + 1) ** 2).mean()))  # it was fed the training loss


def test_channels_last_converts_the_model_and_four_dimensional_inputs_only():
    seen: list[tuple[int, bool]] = []

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, padding=1)

        def forward(self, x):
            seen.append((x.dim(), x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)))
            return self.conv(x).flatten(1).mean(1, keepdim=True) if x.dim() == 4 else x[:, :1]

    model = Conv()
    x = torch.randn(4, 2, 3, 3)
    trainer = Trainer(
        model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=1, channels_last=True, progress=False
    )
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    trainer.fit(TensorBatcher((x, torch.zeros(4, 1)), 2), TensorBatcher((x, torch.zeros(4, 1)), 4))
    assert seen == [(4, True)] * 3  # two training batches and one validation batch, all channels-last
    seen.clear()
    flat = fixed_linear(1.0, 0.0)  # 2-D inputs have no channels-last layout: they pass unchanged
    x1, y1 = line_data(4)
    result = Trainer(
        flat, nn.MSELoss(), torch.optim.SGD(flat.parameters(), lr=0.0), epochs=1, channels_last=True, progress=False
    ).fit(TensorBatcher((x1, y1), 4))
    assert result.history[0]["train_loss"] == pytest.approx(float(((x1 + 1) ** 2).mean()))
    plain = Conv()
    Trainer(plain, nn.MSELoss(), torch.optim.SGD(plain.parameters(), lr=0.0), epochs=1, progress=False).fit(
        TensorBatcher((x, torch.zeros(4, 1)), 4)
    )
    assert seen == [(4, False)] and not plain.conv.weight.is_contiguous(memory_format=torch.channels_last)


# ------------------------------------------- the Trainer's side of DDP, in one process
class TwoRanks:
    """Stands for this process's place in a 2-rank world (the collectives themselves are faked)."""

    rank, world_size, local_rank, distributed, is_main = 0, 2, 0, True, True


def test_every_rank_adopts_rank_0s_stop_decision(monkeypatch):
    from torchlab.runtime import distributed

    x, y = line_data(4)
    data = TensorBatcher((x, y), 2)
    rank0 = {"stop after epoch": 2}
    devices = []  # NCCL broadcasts from the rank's own GPU: the flag is made on the training device
    monkeypatch.setattr(
        distributed,
        "broadcast_flag",
        lambda flag, device: devices.append(device) or len(trainer.history) >= rank0["stop after epoch"],
    )
    model = fixed_linear(0.0, 0.0)
    es = EarlyStopping("train_loss", patience=None, restore_best_weights=False)  # this rank would never stop
    trainer = Trainer(
        model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01), epochs=5, early_stopping=es, progress=False
    )
    result = trainer.fit(data)
    assert (result.epochs_run, result.stopped_early, es.stopped_epoch) == (2, True, 1)
    assert devices == [trainer.device] * 2
    # and the other way round: this rank wants to stop after epoch 1, rank 0 does not
    monkeypatch.setattr(distributed, "broadcast_flag", lambda flag, device: False)
    model = fixed_linear(0.0, 0.0)
    es = EarlyStopping("train_loss", patience=0, min_delta=1e9, restore_best_weights=False)
    trainer = Trainer(
        model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01), epochs=3, early_stopping=es, progress=False
    )
    result = trainer.fit(data)
    assert (result.epochs_run, result.stopped_early, es.stopped_epoch) == (3, False, None)


def test_unequal_step_counts_are_refused_before_training(monkeypatch):
    from torchlab.runtime import distributed

    asked, devices = [], []  # NCCL gathers on the rank's own GPU: the counts are made on the training device
    monkeypatch.setattr(
        distributed, "all_gather_int", lambda n, device: asked.append(n) or devices.append(device) or [n, n + 1]
    )
    x, y = line_data(6)
    model = fixed_linear(0.0, 0.0)
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01), epochs=1, progress=False)
    trainer.world = TwoRanks()
    with pytest.raises(
        TrainingError,
        match=r"^the ranks would take different numbers of training steps per epoch "
        r"\(\[3, 4\]\); shuffle the training TensorBatcher or use ",
    ):
        trainer.fit(TensorBatcher((x, y), 2))
    assert asked == [3] and trainer.history == [] and model.weight.item() == 0.0
    assert devices == [trainer.device]
    monkeypatch.setattr(distributed, "all_gather_int", lambda n, device: [n, n])
    assert trainer.fit(TensorBatcher((x, y), 2)).epochs_run == 1  # equal counts: training goes on
    asked.clear()
    monkeypatch.setattr(distributed, "all_gather_int", lambda n, device: asked.append(n) or [n, n + 1])
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01), epochs=1, progress=False)
    trainer.world = TwoRanks()
    assert trainer.fit(iter(list(TensorBatcher((x, y), 2)))).epochs_run == 1  # no length: nothing to compare
    assert asked == []
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01), epochs=1, progress=False)
    assert trainer.fit(TensorBatcher((x, y), 2)).epochs_run == 1 and asked == []  # one process: never asked


def test_only_rank_0_writes_files(tmp_path, capsys):
    class Rank1:
        rank, world_size, local_rank, distributed, is_main = 1, 2, 1, False, False

    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    trainer = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.01),
        epochs=2,
        checkpoint_dir=tmp_path / "run",
        progress=True,
    )
    trainer.world = Rank1()
    result = trainer.fit(TensorBatcher((x, y), 2))
    assert result.epochs_run == 2 and not (tmp_path / "run").exists()
    assert capsys.readouterr() == ("", "")  # no progress output either: rank 0 shows it
    assert 0 <= result.fit_seconds < 60


def test_only_rank_0_cleans_up_a_resumed_folder(tmp_path):
    class Rank1:
        rank, world_size, local_rank, distributed, is_main = 1, 2, 1, False, False

    x, y = line_data(4)

    def resumed(world=None):
        model = fixed_linear(0.0, 0.0)
        trainer = Trainer(
            model,
            nn.MSELoss(),
            torch.optim.SGD(model.parameters(), lr=0.01),
            epochs=2,
            checkpoint_dir=tmp_path,
            early_stopping=EarlyStopping("train_loss", patience=None),
            progress=False,
        )
        if world is not None:
            trainer.world = world
        return trainer.fit(TensorBatcher((x, y), 2), resume=(tmp_path / "last.pt").exists())

    resumed()
    leftover = tmp_path / ".last.pt.abc.tmp"
    leftover.write_bytes(b"torn")
    assert resumed(Rank1()).epochs_run == 2 and leftover.exists()  # another rank's folder: left alone
    resumed()
    assert not leftover.exists()


def test_a_non_finite_training_metric_named_like_a_loss_blames_the_step_size():
    class AuxLoss(Metric):
        mode = "min"

        def batch_stats(self, output, target, *rest):
            return torch.tensor(float("nan")), 1

    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    trainer = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        metrics={"aux_loss": AuxLoss()},
        epochs=1,
        progress=False,
    )
    with pytest.raises(TrainingError) as info:
        trainer.fit(TensorBatcher((x, y), 2), TensorBatcher((x, y), 2))
    assert info.value.quantity == "train_aux_loss" and info.value.fields == ("lr", "grad_clip")  # the training loss
    # is finite here, but the broken quantity is a training one: the validation data are not to blame


def test_no_epoch_to_run_keeps_the_weights(tmp_path):
    x, y = line_data(4)
    model = fixed_linear(0.5, 0.25)
    trainer = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=0,
        progress=False,
        early_stopping=EarlyStopping("train_loss", patience=2),
    )
    result = trainer.fit(TensorBatcher((x, y), 2))
    assert (result.epochs_run, result.history, result.best_epoch, result.last) == (0, [], 0, {})
    assert (model.weight.item(), model.bias.item()) == (0.5, 0.25)
    assert trainer.checkpoint(-1)["metrics"] == {} and trainer.checkpoint(-1)["epoch"] == 0


def test_compile_wraps_the_training_model_only_when_asked(monkeypatch):
    compiled_models = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled_models.append(module) or ("compiled", module))
    model = fixed_linear(0.0, 0.0)
    plain = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1))
    assert plain.net is model and distributed.unwrap(plain.net) is model and plain.model is model
    assert compiled_models == []
    compiled = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), compile=True)
    assert compiled_models == [model] and compiled.net == ("compiled", model)
    assert distributed.unwrap(compiled.net) is compiled.net and compiled.model is model  # the plain module is saved


def test_under_a_process_group_training_goes_through_ddp(tmp_path):
    import torch.distributed as dist

    x, y = line_data(6)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = fixed_linear(0.0, 0.0)
        trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01), epochs=2, progress=False)
        assert isinstance(trainer.net, nn.parallel.DistributedDataParallel)
        assert trainer.net.module is model and distributed.unwrap(trainer.net) is model
        ddp = trainer.fit(TensorBatcher((x, y), 2), TensorBatcher((x, y), 3))
    finally:
        dist.destroy_process_group()
    model = fixed_linear(0.0, 0.0)
    alone = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.01), epochs=2, progress=False)
    single = alone.fit(TensorBatcher((x, y), 2), TensorBatcher((x, y), 3))
    for a, b in zip(ddp.history, single.history):  # one rank under DDP trains exactly like no DDP
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)


def test_checkpoint_every_third_epoch(tmp_path):
    trainer, data = _scripted_trainer(tmp_path, [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.25], epochs=7, checkpoint_every=3)
    written = []
    trainer.callbacks.append(
        lambda tr, row: written.append(
            read_checkpoint(tmp_path / "last.pt")["epoch"] if (tmp_path / "last.pt").exists() else None
        )
    )
    trainer.fit(data, data)
    assert written == [None, None, 3, 3, 3, 6, 7]


def test_one_fsync_per_epoch_and_a_durable_history_by_default(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(ckpt.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    trainer, data = _scripted_trainer(tmp_path / "run", [3.0, 2.0, 2.5], epochs=3)
    trainer.fit(data, data)
    assert len(synced) == 3 * 2  # last.pt (best.pt is a hard link to the same bytes) and its folder, per epoch
    synced.clear()
    write_history_csv([{"epoch": 1}], tmp_path / "h.csv")
    assert len(synced) == 2  # called directly, the CSV is fsynced (file and folder)


def test_non_regular_files_and_non_finite_weights_are_refused(tmp_path):
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="pipe.pt is not a regular file"):
        read_checkpoint(fifo)  # at once: reading a FIFO would block
    state = {"a": torch.zeros(3), "steps": torch.tensor([7]), "b": torch.tensor([1.0, float("nan"), float("inf")])}
    with pytest.raises(CheckpointError, match=r"^m\.pt holds non-finite weights \(2 NaN or infinite values in b\)"):
        ckpt.check_finite_weights(state, "m.pt")
    ckpt.check_finite_weights({"a": torch.zeros(3), "n": torch.tensor([2**62]), "note": "text"}, "m.pt")
    with pytest.raises(CheckpointError, match=r"\(1,500 NaN"):
        ckpt.check_finite_weights({"big": torch.full((1500,), float("nan"))}, "m.pt")


def test_pickled_global_names_the_callable_a_pickle_refers_to(tmp_path):
    import pickle

    path = tmp_path / "p.pkl"
    for protocol in (0, 2, 4):  # GLOBAL opcodes in old protocols, STACK_GLOBAL from protocol 4
        path.write_bytes(pickle.dumps(os.path.join, protocol=protocol))
        assert ckpt._pickled_global(path) == "posixpath.join"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "name": "x"}, protocol=4))
    assert ckpt._pickled_global(path) is None  # plain data refers to nothing
    path.write_bytes(b"\x80\x04not a pickle at all")
    assert ckpt._pickled_global(path) is None
    path.write_bytes(pickle.dumps(("a" * 100, os.path.join), protocol=4))
    assert ckpt._pickled_global(path, limit=50) is None  # cut off before the reference
    assert ckpt._pickled_global(path) == "posixpath.join"


def test_a_single_sample_epoch_reports_its_own_loss():
    model = fixed_linear(0.5, 0.0)
    x, y = torch.tensor([[2.0]]), torch.tensor([[4.0]])
    result = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=1, progress=False).fit(
        TensorBatcher((x, y), 1), TensorBatcher((x, y), 1)
    )
    assert result.history[0]["train_loss"] == 9.0 and result.history[0]["val_loss"] == 9.0


def test_train_metrics_off_skips_the_metrics_work_on_training_batches():
    calls = {"n": 0}

    class Counting(Accuracy):
        def batch_stats(self, output, target, *rest):
            calls["n"] += 1
            return super().batch_stats(output, target)

    x, y = torch.zeros(6, 1), torch.zeros(6, dtype=torch.long)
    model = nn.Linear(1, 2)
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.0),
        metrics={"accuracy": Counting()},
        epochs=1,
        train_metrics=False,
        progress=False,
    )
    result = trainer.fit(TensorBatcher((x, y), 2), TensorBatcher((x, y), 3))
    assert calls["n"] == 2 and "train_accuracy" not in result.history[0] and "val_accuracy" in result.history[0]


def test_non_finite_loss_advice_names_the_step_size_or_the_validation_data():
    x, y = line_data(4)

    def fit(meta, val_y=None, loss_fn=None):
        model = fixed_linear(0.0, 0.0)
        trainer = Trainer(
            model,
            loss_fn or nn.MSELoss(),
            torch.optim.SGD(model.parameters(), lr=0.5),
            epochs=2,
            checkpoint_meta=meta,
            progress=False,
        )
        with pytest.raises(TrainingError) as info:
            trainer.fit(TensorBatcher((x, y), 2), TensorBatcher((x, val_y if val_y is not None else y), 2))
        return info.value

    blow_up = lambda out, target: nn.functional.mse_loss(out, target) + float("inf")  # noqa: E731
    # the engine reads no config: a non-finite setting is named by torchlab.train (tests/test_api.py)
    error = fit({"config": {"lr": 0.5, "label_smoothing": float("nan")}}, loss_fn=blow_up)
    assert str(error).endswith("(lr 0.5); try a lower learning rate (lr) or gradient clipping (grad_clip)")
    error = fit({}, val_y=torch.full_like(y, float("nan")))
    assert (error.quantity, error.epoch, error.fields, error.checkpoint) == ("val_loss", 1, (), None)
    assert (
        str(error)
        == in_flags(error)
        == (
            "val_loss became nan in epoch 1 (lr 0.5); the training loss is finite, "
            "so the validation data hold values the model cannot score"
        )
    )


def test_atomic_write_names_temporary_files_for_the_clean_up_and_makes_folders(tmp_path, monkeypatch):
    sources: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(ckpt.os, "replace", lambda src, dst: (sources.append(str(src)), real_replace(src, dst))[1])
    ckpt.atomic_write_bytes(tmp_path / "a" / "b" / "last.pt", b"x", also=(tmp_path / "a" / "b" / "best.pt",))
    assert (tmp_path / "a" / "b" / "last.pt").read_bytes() == b"x"  # the missing folders were made
    twin, tmp = (os.path.basename(s) for s in sources)
    assert os.path.dirname(sources[1]) == str(tmp_path / "a" / "b")  # same folder: the rename is atomic
    assert tmp.startswith(".last.pt.") and tmp.endswith(".tmp")  # what a resumed run cleans up (".*.tmp")
    assert twin.startswith(".best.pt..last.pt.") and twin.endswith(".tmp")


def test_without_hard_links_every_name_gets_a_durable_copy(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError("no hard links here")

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(ckpt.os, "link", no_links)
    monkeypatch.setattr(ckpt.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    ckpt.atomic_write_bytes(tmp_path / "last.pt", b"abc", also=(tmp_path / "best.pt", tmp_path / "other.pt"))
    assert [(tmp_path / n).read_bytes() for n in ("last.pt", "best.pt", "other.pt")] == [b"abc"] * 3
    assert len(synced) == 6  # each of the three files and the folder after each
    synced.clear()
    ckpt.atomic_write_bytes(tmp_path / "last.pt", b"def", also=(tmp_path / "best.pt",), durable=False)
    assert synced == [] and (tmp_path / "best.pt").read_bytes() == b"def"
    ckpt.atomic_write_text(tmp_path / "h.csv", "é\n")
    assert len(synced) == 2 and (tmp_path / "h.csv").read_bytes() == "é\n".encode()  # durable by default, UTF-8


def test_add_metrics_to_a_checkpoint_without_metrics(tmp_path):
    ckpt.save_checkpoint(
        ckpt.make_checkpoint(task="t", model_name="m", model=nn.Linear(1, 1), model_kwargs={}), tmp_path / "best.pt"
    )
    ckpt.add_metrics(tmp_path / "best.pt", {"test_accuracy": 0.5})
    assert read_checkpoint(tmp_path / "best.pt")["metrics"] == {"test_accuracy": 0.5}


def test_load_errors_name_the_file_and_old_files_load(tmp_path):
    import torchlab
    from torchlab.models import build_model

    model = build_model("digit-mlp")
    saved = ckpt.make_checkpoint(task="digit-mlp", model_name="digit-mlp", model=model, model_kwargs={})
    del saved["model"]["kwargs"]  # a file without model arguments: the model's defaults
    ckpt.save_checkpoint(saved, tmp_path / "plain.pt")
    loaded, meta = torchlab.load(tmp_path / "plain.pt")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    saved["state_dict"] = {
        k: torch.full_like(v, float("nan")) if k.endswith("bias") else v for k, v in saved["state_dict"].items()
    }
    ckpt.save_checkpoint(saved, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'nan.pt'} holds non-finite weights"):
        torchlab.load(tmp_path / "nan.pt")
    saved = ckpt.make_checkpoint(
        task="digit-mlp", model_name="digit-mlp", model=build_model("digit-mlp", hidden=5), model_kwargs={"hidden": 6}
    )
    ckpt.save_checkpoint(saved, tmp_path / "misfit.pt")
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'misfit.pt'} does not fit model DigitMLP: size mismatch"):
        torchlab.load(tmp_path / "misfit.pt")


def test_a_one_line_load_error_is_reported_whole():
    class Picky(nn.Linear):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            raise RuntimeError("refuses every state")

    with pytest.raises(CheckpointError, match=r"^x\.pt does not fit model Picky: refuses every state; its weights"):
        ckpt.load_state_into(Picky(1, 1), {}, source="x.pt")


def test_a_crafted_reference_is_named_in_zip_and_plain_pickles(tmp_path):
    torch.save({"format": "torchlab-checkpoint", "hook": os.path.join}, tmp_path / "zip.pt")
    with pytest.raises(CheckpointError, match=r"refers to the Python object posixpath\.join"):
        read_checkpoint(tmp_path / "zip.pt")
    (tmp_path / "inst.pt").write_bytes(b"(iposixpath\njoin\n.")  # the old INST opcode
    assert ckpt._pickled_global(tmp_path / "inst.pt") == "posixpath.join"
    with pytest.raises(CheckpointError, match=r"refers to the Python object posixpath\.join"):
        read_checkpoint(tmp_path / "inst.pt")


def test_a_model_argument_with_a_newline_gives_a_one_line_error(tmp_path):
    import torchlab
    from torchlab.models import build_model

    saved = ckpt.make_checkpoint(
        task="digit-mlp", model_name="digit-mlp", model=build_model("digit-mlp"), model_kwargs={"hid\nden": 3}
    )
    ckpt.save_checkpoint(saved, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError) as info:
        torchlab.load(tmp_path / "odd.pt")
    assert "\n" not in str(info.value) and "holds model arguments that digit-mlp does not take" in str(info.value)


def test_device_handling_on_a_device_the_tests_lack():
    """The CUDA-only branches, checked without a GPU: autocast's arguments, batches moved to the training
    device ("meta" stands in for a GPU), and the epoch totals made there."""
    model = fixed_linear(0.0, 0.0)
    trainer = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1), amp=True)
    assert autocast(trainer.device, trainer.amp) is autocast(
        trainer.device, trainer.amp
    )  # on the CPU: the one shared null context
    trainer.device = torch.device("cuda")
    with pytest.warns(UserWarning):  # CUDA is not available here, so torch disables it, but says what was asked
        context = autocast(trainer.device, trainer.amp)
    assert (context.device, context.fast_dtype) == ("cuda", torch.bfloat16)
    trainer.amp = False
    assert autocast(trainer.device, trainer.amp) is autocast(torch.device("cpu"), False)
    trainer.device = torch.device("meta")
    batch = to_device((torch.zeros(2, 1), torch.ones(2, 1)), trainer.device)
    assert [t.device.type for t in batch] == ["meta", "meta"] and batch[0].shape == (2, 1)
    same = (torch.zeros(2, 1, device="meta"),)
    assert to_device(same, trainer.device)[0] is same[0]  # already there: not copied
    totals = Totals({"accuracy": Accuracy()}, trainer.device)
    assert [t.device.type for t in (totals.loss, *totals.sums, *totals.counts)] == ["meta"] * 3
    assert totals.loss.dtype == totals.sums[0].dtype == totals.counts[0].dtype == torch.float64


def test_resume_reads_checkpoints_onto_the_training_device(tmp_path, monkeypatch):
    from torchlab.engine import resume as resume_module

    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    first = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=1,
        checkpoint_dir=tmp_path,
        early_stopping=EarlyStopping("train_loss", patience=None),
        progress=False,
    )
    first.fit(TensorBatcher((x, y), 2))
    locations = []
    real = resume_module.read_checkpoint
    monkeypatch.setattr(
        resume_module,
        "read_checkpoint",
        lambda path, map_location="cpu": (locations.append((path.name, map_location)), real(path, map_location))[1],
    )
    again = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        checkpoint_dir=tmp_path,
        early_stopping=EarlyStopping("train_loss", patience=None),
        progress=False,
    )
    again.fit(TensorBatcher((x, y), 2), resume=True)
    assert locations == [("last.pt", torch.device("cpu")), ("best.pt", torch.device("cpu"))]


def test_a_parameter_a_batch_does_not_use_is_left_alone_in_that_step():
    """Gradients are reset to None, not zero: Adam then skips a parameter its batch did not reach,
    instead of moving it on the momentum of earlier batches."""

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Linear(1, 1)
            self.extra = nn.Parameter(torch.ones(()))

        def forward(self, x):
            out = self.main(x)
            return out * self.extra if bool(x[0, 0] > 0) else out  # the extra weight only for positive batches

    torch.manual_seed(0)
    model = Branchy()
    x = torch.tensor([[1.0], [-1.0]])
    y = torch.tensor([[3.0], [3.0]])
    trainer = Trainer(model, nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=0.1), epochs=1, progress=False)
    extra_after_first = []
    real_step = trainer.optimizer.step

    def step(*args, **kwargs):
        out = real_step(*args, **kwargs)
        extra_after_first.append(model.extra.item())
        return out

    trainer.optimizer.step = step
    trainer.fit(TensorBatcher((x, y), 1))  # batch 1 uses extra, batch 2 does not
    assert extra_after_first[0] != 1.0 and extra_after_first[1] == extra_after_first[0]


def test_progress_works_for_batches_without_a_length_and_batch_samplers_get_the_epoch(capsys):
    x, y = line_data(4)
    model = fixed_linear(0.0, 0.0)
    result = Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=1, progress=True).fit(
        iter(list(TensorBatcher((x, y), 2)))
    )
    assert result.epochs_run == 1 and capsys.readouterr().err  # the bar ran, without a total

    class EpochBatches(torch.utils.data.BatchSampler):
        epochs: list[int] = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    batches = EpochBatches(torch.utils.data.SequentialSampler(range(4)), batch_size=2, drop_last=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_sampler=batches)
    Trainer(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.0), epochs=2, progress=False).fit(loader)
    assert batches.epochs == [0, 1]
