"""The Trainer's moving average of the weights (`ema`): the average's arithmetic, what validation and
the checkpoints hold, and a resume that ends exactly where the unbroken run ends."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchlab import Trainer
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.engine.ema import WeightAverage


class Crash(Exception):
    """Stands for a killed process, raised by a callback after an epoch's checkpoint is written."""


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(48, 1, generator=g)
    return TensorBatcher((x[:32], y[:32]), 8, shuffle=True, seed=3), TensorBatcher((x[32:], y[32:]), 16)


def make_trainer(out, ema=0.9, epochs=4, callbacks=()):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return Trainer(
        model, nn.MSELoss(), optimizer, epochs=epochs, checkpoint_dir=out, ema=ema, callbacks=list(callbacks)
    )


def test_the_average_follows_its_formula_with_the_warm_up():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.9)
    expected = 0.0
    for step in range(100):
        with torch.no_grad():
            model.weight.fill_(float(step + 1))
        d = min(0.9, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * (step + 1)
        average.update(model)
    assert average.shadow["weight"].item() == pytest.approx(expected, rel=1e-6)
    assert average.updates == 100
    assert average.current_decay() == 0.9  # past the warm-up: (1 + 100) / 110 > 0.9
    assert WeightAverage(model, decay=0.9).current_decay() == 0.1  # the first step: (1 + 0) / (10 + 0)


def test_integer_buffers_are_copied_and_the_swap_puts_the_training_weights_back():
    model = nn.BatchNorm1d(2)
    average = WeightAverage(model, decay=0.5)
    model.train()
    model(torch.randn(8, 2))
    average.update(model)
    assert average.shadow["num_batches_tracked"].item() == 1
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with average.swapped_into(model):
        assert torch.equal(model.running_mean, average.shadow["running_mean"])
        assert not torch.equal(model.running_mean, trained["running_mean"])
        with average.swapped_into(model):  # nested: still the average
            assert torch.equal(model.running_mean, average.shadow["running_mean"])
        assert torch.equal(average.training_weights(model)["running_mean"], trained["running_mean"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())


def test_a_decay_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"ema decay must be in \[0, 1\), got 1.0"):
        WeightAverage(nn.Linear(1, 1), decay=1.0)


def test_validation_and_checkpoints_use_the_average_and_keep_the_training_weights(tmp_path):
    train, val = data()
    trainer = make_trainer(tmp_path)
    result = trainer.fit(train, val)
    saved = read_checkpoint(tmp_path / "last.pt")
    averaged = trainer.average.shadow
    assert all(torch.equal(saved["state_dict"][k], averaged[k].cpu()) for k in averaged)
    weights = saved["ema"]["training_weights"]
    assert not torch.equal(weights["0.weight"], saved["state_dict"]["0.weight"])
    assert saved["ema"]["updates"] == 4 * len(train)
    # the history's last validation loss is the averaged model's, and fit leaves that model in place
    assert trainer.evaluate(val)["val_loss"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)


def test_ema_zero_is_the_plain_run(tmp_path):
    train, val = data()
    plain = make_trainer(tmp_path / "plain", ema=None).fit(train, val)
    zero = make_trainer(tmp_path / "zero", ema=0.0).fit(*data())
    assert [r["val_loss"] for r in zero.history] == pytest.approx([r["val_loss"] for r in plain.history], rel=1e-6)


def test_resume_of_an_averaged_run_ends_with_the_unbroken_runs_weights(tmp_path):
    whole = make_trainer(tmp_path / "whole")
    whole.fit(*data())

    def crash(trainer, row):
        if row["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        make_trainer(tmp_path / "broken", callbacks=[crash]).fit(*data())
    resumed = make_trainer(tmp_path / "broken")
    resumed.fit(*data(), resume=True)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.average.updates == whole.average.updates
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in whole.history]


def test_a_task_run_with_ema_saves_the_average(tmp_path):
    import torchlab

    result = torchlab.train("digit-mlp", out=tmp_path, device="cpu", epochs=2, ema=0.9, figures=False)
    saved = read_checkpoint(result.best_checkpoint)
    assert saved["ema"]["decay"] == 0.9 and saved["ema"]["updates"] > 0
    assert saved["config"]["ema"] == 0.9


def test_the_ema_flag_names_its_range():
    import torchlab
    from torchlab.errors import UsageError

    with pytest.raises(UsageError, match=r"^--ema must be in \[0, 1\), got 1.0$"):
        torchlab.get_recipe("digit-mlp", ema=1.0)
