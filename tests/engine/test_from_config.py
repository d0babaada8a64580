"""Trainer.from_config: every training field of a config reaches the Trainer and its early stopping."""

from __future__ import annotations

import ast

import torch
from torch import nn

from conftest import ROOT
from torchlab import Trainer
from torchlab.config import TrainConfig, field_names, with_overrides
from torchlab.engine.from_config import STOPPING_FIELDS, TRAINER_FIELDS

# The fields make_optimizer and the data read (engine/optim.py, the tasks' batchers): not the Trainer's.
OPTIMIZER_AND_DATA_FIELDS = {"lr", "batch_size", "weight_decay", "optimizer", "schedule", "warmup"}

EVERY_FIELD_CHANGED = dict(
    epochs=7,
    grad_clip=0.5,
    amp=True,
    channels_last=True,
    compile=True,
    accumulate=3,
    max_time="2h",
    ema=0.9,
    patience=4,
    min_delta=0.01,
    baseline=2.0,
    start_from_epoch=2,
    stopping_threshold=0.001,
    divergence_threshold=50.0,
    check_finite=False,
)


def test_every_field_of_the_shared_config_has_a_destination():
    """A new TrainConfig field must be routed: to the Trainer, its early stopping, or the optimizer and data."""
    routed = set(TRAINER_FIELDS) | set(STOPPING_FIELDS) | OPTIMIZER_AND_DATA_FIELDS
    assert set(field_names(TrainConfig)) == routed
    assert set(EVERY_FIELD_CHANGED) == set(TRAINER_FIELDS) | set(STOPPING_FIELDS)
    defaults = TrainConfig()
    assert all(getattr(defaults, name) != value for name, value in EVERY_FIELD_CHANGED.items())


def test_from_config_hands_over_every_trainer_and_stopping_field(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module: module)  # the setting is what is checked, not inductor
    cfg = with_overrides(TrainConfig(), **EVERY_FIELD_CHANGED)
    model = nn.Linear(2, 1)
    trainer = Trainer.from_config(
        cfg,
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        monitor="val_rmse",
        mode="min",
        restore_best=False,
    )
    for name in TRAINER_FIELDS:
        assert getattr(trainer, name) == getattr(cfg, name), name
    es = trainer.early_stopping
    assert (es.monitor, es.mode, es.restore_best_weights) == ("val_rmse", "min", False)
    for name in STOPPING_FIELDS:
        assert getattr(es, name) == getattr(cfg, name), name
    assert trainer.budget.seconds == 7200


def test_every_training_script_builds_its_trainer_from_the_config():
    """No script calls Trainer(...) with a hand-picked subset of the fields, and none writes its own field flags."""
    for path in sorted((ROOT / "scripts").glob("train_*.py")):
        calls = [node.func for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)]
        names = {ast.unparse(func) for func in calls}
        assert "torchlab.Trainer.from_config" in names and "torchlab.Trainer" not in names, path.name
        assert "torchlab.EarlyStopping" not in names and "add_script_flags" in names, path.name
