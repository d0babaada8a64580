"""The Python API: recipes as typed configs, train() with overrides, evaluate() and predict() returning values."""

from __future__ import annotations

import dataclasses

import pytest

import torchlab
from torchlab.cli.main import main
from torchlab.errors import UsageError


def test_recipes_are_frozen_typed_configs():
    cfg = torchlab.get_recipe("digit-mlp")
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.schedule, cfg.standardize) == (
        39,
        128,
        "adamw",
        "onecycle",
        True,
    )
    old = torchlab.get_recipe("digit-mlp", "adamw-20")  # the default until torchlab tune found the one above
    assert (old.epochs, old.batch_size, old.lr, old.standardize) == (20, 64, 3e-2, False)
    seed = torchlab.get_recipe("digit-mlp", "seed")
    assert (seed.epochs, seed.lr, seed.batch_size, seed.init_std, seed.standardize) == (100, 0.1, None, 0.1, False)
    assert torchlab.get_recipe("digit-mlp", "standardized").standardize and not seed.standardize
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    assert torchlab.recipe_names("digit-mlp") == ["default", "adamw-20", "seed", "standardized"]
    assert "digits" in torchlab.task_names() and "digit-mlp" not in torchlab.task_names()  # an alias


def test_a_misspelt_setting_names_the_right_one():
    with pytest.raises(UsageError, match=r"no field 'epoch'; did you mean 'epochs'\?") as info:
        torchlab.train("digit-mlp", epoch=1)
    assert "\n" not in str(info.value) and "batch_size" in str(info.value)  # lists the valid fields


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "--epochs must be a whole number >= 1"),
        ({"hidden": 0}, "--hidden must be a whole number >= 1"),
        ({"optimizer": "rmsprop"}, "--optimizer must be one of adamw, adam, sgd"),
        ({"val_fraction": 0.7}, "--val-fraction must be in [0, 0.5)"),
    ],
)
def test_bad_values_fail_before_anything_runs(tmp_path, overrides, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        torchlab.train("digit-mlp", out=tmp_path / "run", **overrides)
    assert not (tmp_path / "run").exists()


def test_unknown_task_and_recipe():
    with pytest.raises(UsageError, match=r"unknown task 'digit'; choose one of: digits, .*\(or an old name: digit-mlp"):
        torchlab.get_recipe("digit")
    with pytest.raises(
        UsageError, match="unknown recipe 'fast' for digit-mlp; choose one of: default, adamw-20, seed, standardized"
    ):
        torchlab.get_recipe("digit-mlp", "fast")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "run"
    return torchlab.train("digit-mlp", out=out, device="cpu", epochs=3, hidden=16, figures=False, progress=False)


def test_train_returns_metrics_paths_and_history(trained):
    assert trained.best_checkpoint.name == "best.pt" and trained.last_checkpoint.exists()
    assert [row["epoch"] for row in trained.history] == [1, 2, 3]
    assert 0.5 < trained.metrics["test_accuracy"] <= 1.0 and trained.fit_seconds > 0
    assert trained.figures == [] and trained.config.hidden == 16 and trained.config.epochs == 3


def test_the_checkpoint_records_the_settings_the_run_used(trained):
    _, meta = torchlab.load(trained.best_checkpoint)
    assert (
        meta["config"]["hidden"] == 16
        and meta["config"]["epochs"] == 3
        and meta["config"]["lr"] == torchlab.get_recipe("digit-mlp").lr == 0.0647
    )


def test_evaluate_and_predict_return_values(trained):
    metrics = torchlab.evaluate(trained.best_checkpoint, device="cpu")
    assert metrics["samples"] == 360 and metrics["accuracy"] == pytest.approx(
        trained.metrics["test_accuracy"], abs=1e-6
    )
    records = torchlab.predict(trained.best_checkpoint, index=[0, 3], device="cpu")
    assert [r["true"] for r in records] == [6, 7]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-2 for r in records)
    probs = records[0]["probabilities"]
    assert str(records[0]["prediction"]) == max(probs, key=probs.get)


def test_resume_refuses_a_changed_model_but_takes_more_epochs(trained, capsys):
    out = trained.best_checkpoint.parent
    with pytest.raises(UsageError, match=r"--resume with --hidden 32 but .*last\.pt was trained with 16"):
        torchlab.train("digit-mlp", out=out, device="cpu", epochs=4, resume=True, figures=False)
    more = torchlab.train(
        "digit-mlp", out=out, device="cpu", epochs=4, hidden=16, resume=True, figures=False, progress=False
    )
    assert [row["epoch"] for row in more.history] == [1, 2, 3, 4]


def test_cli_flags_come_from_the_config_with_each_recipes_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "digit-mlp", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--epochs EPOCHS maximum number of epochs (default: 39; adamw-20: 20; seed: 100; standardized: 40)" in out
    assert "--hidden HIDDEN" in out and "--val-fraction" in out and "--amp, --no-amp" in out


def test_cli_none_sets_an_optional_field(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "digit-mlp",
                "--batch-size",
                "none",
                "--epochs",
                "1",
                "--out",
                str(tmp_path),
                "--device",
                "cpu",
                "--no-figures",
                "--no-progress",
            ]
        )
        == 0
    )
    _, meta = torchlab.load(tmp_path / "best.pt")
    assert meta["config"]["batch_size"] is None


def test_cli_tensorboard_flag_writes_scalars_and_figures(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert (
        main(
            [
                "train",
                "digit-mlp",
                "--tensorboard",
                "--epochs",
                "2",
                "--out",
                str(tmp_path),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    scalars: dict[str, list[float]] = {}
    images: list[str] = []
    for event_file in (tmp_path / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(event_file), size_guidance={"images": 0}).Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
        images += acc.Tags()["images"]
    history = torchlab.load(tmp_path / "last.pt")[1]["history"]
    val_loss = next(v for k, v in scalars.items() if k.endswith("val_loss"))
    assert val_loss == pytest.approx([row["val_loss"] for row in history], rel=1e-6)
    assert any("loss" in name for name in images) and len(images) == 4


@pytest.mark.parametrize("epochs, steps", [(1, 1), (1, 2), (1, 4), (2, 2)])
def test_one_cycle_survives_very_short_runs(epochs, steps):
    """warmup * steps == 1 used to divide by zero inside OneCycleLR (1 epoch of 4 batches at warmup 0.25)."""
    import torch

    from torchlab.config import TrainConfig
    from torchlab.engine.optim import make_optimizer

    model = torch.nn.Linear(2, 1)
    optimizer, scheduler, _ = make_optimizer(
        model, TrainConfig(epochs=epochs, lr=0.1, schedule="onecycle", warmup=0.25), steps
    )
    seen = [optimizer.param_groups[0]["lr"]]
    for _ in range(epochs * steps):
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert 0.05 <= max(seen) <= 0.1 + 1e-12  # it climbs near the peak (or keeps it when there is no room to cycle)
    assert scheduler is None or seen[epochs * steps - 1] < 0.01  # and anneals by the last step


def test_new_checkpoints_store_the_config_once(trained):
    for path in (trained.best_checkpoint, trained.last_checkpoint):
        _, meta = torchlab.load(path)
        assert "hparams" not in meta and meta["config"]["hidden"] == 16
        assert (meta["task"], meta["recipe"], meta["seed"]) == ("digits", "default", 0)  # the task, not the alias
        assert meta["model"]["name"] == meta["config"]["model"] == "digit-mlp"
        # Run.trainer's record: the model spec from the task's meta, its other fields as they were
        assert meta["model"]["name"] == "digit-mlp" and meta["model"]["kwargs"]["hidden"] == 16
        assert meta["classes"] == list(range(10)) and "normalization" in meta and "model_name" not in meta


def with_hparams(path, keep_config=True):
    """Rewrite a checkpoint as older torchlab wrote it: the config also (or only) under "hparams"."""
    from torchlab.engine.checkpoint import read_checkpoint, save_checkpoint

    checkpoint = read_checkpoint(path)
    checkpoint["hparams"] = dict(checkpoint["config"])
    if not keep_config:
        del checkpoint["config"]
    save_checkpoint(checkpoint, path)


@pytest.mark.parametrize("keep_config", [True, False])
def test_a_checkpoint_written_with_hparams_loads_evaluates_predicts_resumes_and_shows(tmp_path, capsys, keep_config):
    out = tmp_path / "run"
    torchlab.train("digit-mlp", out=out, device="cpu", epochs=2, hidden=16, figures=False, progress=False)
    for name in ("best.pt", "last.pt"):
        with_hparams(out / name, keep_config)
    _, meta = torchlab.load(out / "best.pt")
    assert meta["hparams"]["hidden"] == 16 and ("config" in meta) == keep_config
    assert torchlab.evaluate(out / "best.pt", device="cpu")["samples"] == 360
    assert [r["true"] for r in torchlab.predict(out / "best.pt", index=[0], device="cpu")] == [6]
    assert main(["show", str(out)]) == 0
    shown = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.startswith("settings"))
    assert "hidden=16" in shown["settings"] and "epochs=2" in shown["settings"]
    more = torchlab.train(
        "digit-mlp", out=out, device="cpu", epochs=3, hidden=16, resume=True, figures=False, progress=False
    )
    assert [row["epoch"] for row in more.history] == [1, 2, 3]
    _, meta = torchlab.load(out / "last.pt")
    assert meta["epoch"] == 3 and "hparams" not in meta and meta["config"]["epochs"] == 3  # written anew: once


def test_a_non_finite_field_is_named_as_what_made_the_loss_non_finite(tmp_path, monkeypatch):
    """The engine reads no config; torchlab.train, which has it, blames a NaN or infinite setting."""
    import math
    from dataclasses import dataclass

    import torch
    from torch import nn

    import torchlab.tasks.ring.train as ring_train
    from torchlab.cli.main import in_flags
    from torchlab.config import config_field
    from torchlab.data import TensorBatcher
    from torchlab.errors import NonFiniteLoss
    from torchlab.tasks.ring.config import RingConfig

    @dataclass(frozen=True)
    class ScaledConfig(RingConfig):
        loss_scale: float = config_field(1.0, "multiplies the loss (no check, so it may be NaN)")

    def train_scaled(cfg, run):
        torch.manual_seed(0)
        x = torch.randn(32, 2)
        y = (x.norm(dim=1) > 1).float()
        model = torchlab.build_model("ring-mlp")
        bce = nn.BCEWithLogitsLoss()

        def loss_fn(out, target):  # scaled from the second epoch on
            return (cfg.loss_scale if trainer.history else 1.0) * bce(out, target)

        trainer = run.trainer(
            model,
            loss_fn,
            torch.optim.SGD(model.parameters(), lr=cfg.lr),
            monitor="train_loss",
            meta={"model_name": "ring-mlp"},
        )
        return trainer.fit(TensorBatcher((x, y), 16))

    monkeypatch.setattr(ring_train, "train", train_scaled)
    assert (
        torchlab.train("ring-mlp", config=ScaledConfig(epochs=2), out=tmp_path / "fine", device="cpu").epochs_run == 2
    )
    with pytest.raises(NonFiniteLoss) as info:
        torchlab.train(
            "ring-mlp", config=ScaledConfig(epochs=2, loss_scale=math.nan), out=tmp_path / "nan", device="cpu"
        )
    error = info.value
    last = tmp_path / "nan" / "last.pt"
    assert (error.quantity, error.epoch, error.lr, error.fields) == ("train_loss", 2, 0.001, ("loss_scale",))
    assert error.checkpoint == last and torchlab.load(last)[1]["epoch"] == 1  # epoch 1's, kept
    assert str(error) == (
        "train_loss became nan in epoch 2 (lr 0.001); loss_scale is nan: give it a finite value; "
        f"the last good checkpoint is {last}"
    )
    assert in_flags(error) == (
        "train_loss became nan in epoch 2 (lr 0.001); --loss-scale is nan: give it a finite "
        f"value; the last good checkpoint is {last}"
    )
    with pytest.raises(NonFiniteLoss, match=r"is inf: give it a finite value"):
        torchlab.train(
            "ring-mlp", config=ScaledConfig(epochs=2, loss_scale=math.inf), out=tmp_path / "inf", device="cpu"
        )
    with pytest.raises(NonFiniteLoss) as info:  # every setting finite: the step size is what to change
        torchlab.train("ring-mlp", config=ScaledConfig(epochs=5, lr=1e30), out=tmp_path / "big", device="cpu")
    assert info.value.fields == ("lr", "grad_clip")
