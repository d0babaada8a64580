"""TensorBoard: the event file holds every history quantity per epoch, the lr per step, and figures."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from torchlab import Trainer
from torchlab.data import TensorBatcher
from torchlab.engine.metrics import Accuracy
from torchlab.errors import DataError, UsageError

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator", reason="the optional tensorboard package is absent"
)


def read_events(log_dir):
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def make_trainer(blobs, log_dir, epochs=3):
    x, y = blobs
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))  # a new lr every step
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        opt,
        metrics={"accuracy": Accuracy()},
        epochs=epochs,
        scheduler=sched,
        scheduler_interval="batch",
        progress=False,
        tensorboard_dir=log_dir,
    )
    return trainer, TensorBatcher((x[:240], y[:240]), 60), TensorBatcher((x[240:], y[240:]), 60)


def test_event_file_scalars_equal_the_history(blobs, tmp_path):
    trainer, train, val = make_trainer(blobs, tmp_path / "tb")
    result = trainer.fit(train, val)
    events = read_events(tmp_path / "tb")
    quantities = [k for k in result.history[0] if k != "epoch"]
    assert set(quantities) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert sorted(events.Tags()["scalars"]) == sorted([f"epoch/{k}" for k in quantities] + ["step/lr"])
    for key in quantities:
        logged = events.Scalars(f"epoch/{key}")
        assert [e.step for e in logged] == [1, 2, 3]
        assert [e.value for e in logged] == pytest.approx([row[key] for row in result.history], rel=1e-6)
    lrs = events.Scalars("step/lr")  # 4 steps per epoch; step s trains with 0.1 / s
    assert [e.step for e in lrs] == list(range(1, 13))
    assert [e.value for e in lrs] == pytest.approx([0.1 / s for s in range(1, 13)], rel=1e-6)


def test_resumed_run_continues_the_step_count(blobs, tmp_path):
    trainer, train, val = make_trainer(blobs, tmp_path / "tb", epochs=2)
    trainer.checkpoint_dir = tmp_path
    trainer.fit(train, val)
    trainer, train, val = make_trainer(blobs, tmp_path / "tb", epochs=3)
    trainer.checkpoint_dir = tmp_path
    trainer.fit(train, val, resume=True)
    events = read_events(tmp_path / "tb")
    assert [e.step for e in events.Scalars("epoch/train_loss")] == [1, 2, 3]
    assert [e.step for e in events.Scalars("step/lr")] == list(range(1, 13))


def test_missing_tensorboard_is_a_one_line_usage_error(blobs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` now raises ImportError
    with pytest.raises(UsageError, match=r"pip install torchlab\[tensorboard\]"):
        make_trainer(blobs, tmp_path / "tb")
    assert not (tmp_path / "tb").exists()


def test_figures_are_logged_as_images(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from torchlab.reporting.tensorboard import log_figures

    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "loss.png")
    plt.close(fig)
    assert log_figures(tmp_path / "tb", [tmp_path / "loss.png"], step=5) == ["figures/loss"]
    images = read_events(tmp_path / "tb").Images("figures/loss")
    assert [(i.step, i.width, i.height) for i in images] == [(5, 150, 100)]


def test_unreadable_figure_is_a_data_error_and_writes_nothing(tmp_path):
    from torchlab.reporting.tensorboard import log_figures

    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(DataError, match="notes.png"):
        log_figures(tmp_path / "tb", [tmp_path / "notes.png"])
    assert not (tmp_path / "tb").exists()
