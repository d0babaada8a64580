"""Checkpoints: round trip, atomic writes, and clear errors for files that are not ours."""

from __future__ import annotations

import os

import pytest
import torch

import torchlab
from torchlab.engine.checkpoint import atomic_write_bytes, make_checkpoint, read_checkpoint, save_checkpoint
from torchlab.errors import CheckpointError
from torchlab.models import build_model


def saved_digit_mlp(path, **extra):
    torch.manual_seed(1)
    model = build_model("digit-mlp", hidden=12)
    checkpoint = make_checkpoint(
        task="digit-mlp",
        model_name="digit-mlp",
        model=model,
        model_kwargs={"hidden": 12},
        normalization={"divide_by": 16.0},
        **extra,
    )
    save_checkpoint(checkpoint, path)
    return model


def test_round_trip_gives_identical_predictions(tmp_path):
    model = saved_digit_mlp(tmp_path / "m.pt", epoch=3, metrics={"val_accuracy": 0.9})
    loaded, meta = torchlab.load(tmp_path / "m.pt")
    x = torch.rand(17, 64)
    model.eval()
    assert torch.equal(model(x), loaded(x))
    assert not loaded.training
    assert meta["task"] == "digit-mlp" and meta["model"]["kwargs"] == {"hidden": 12}
    assert meta["normalization"] == {"divide_by": 16.0} and meta["epoch"] == 3
    assert meta["versions"]["torch"] == str(torch.__version__)
    assert "state_dict" not in meta


def test_checkpoint_metadata_is_plain(tmp_path):
    import numpy as np

    saved_digit_mlp(tmp_path / "m.pt", metrics={"acc": np.float64(0.5)}, shape=(1, 2))
    checkpoint = read_checkpoint(tmp_path / "m.pt")
    assert checkpoint["metrics"]["acc"] == 0.5 and type(checkpoint["metrics"]["acc"]) is float
    assert checkpoint["shape"] == [1, 2]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable checkpoint"),
        (b"certainly not a zip file" * 10, "not a readable checkpoint|was refused"),
    ],
)
def test_garbage_files_give_checkpoint_error(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        torchlab.load(path)


def test_truncated_checkpoint(tmp_path):
    saved_digit_mlp(tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        torchlab.load(tmp_path / "cut.pt")


def test_foreign_torch_file_and_missing_file(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a torchlab checkpoint"):
        torchlab.load(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        torchlab.load(tmp_path / "nope.pt")


def test_weights_that_do_not_fit_the_model(tmp_path):
    saved_digit_mlp(tmp_path / "m.pt")
    checkpoint = read_checkpoint(tmp_path / "m.pt")
    checkpoint["model"]["kwargs"] = {"hidden": 32}  # the saved weights have 12 hidden units
    save_checkpoint(checkpoint, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="does not fit model DigitMLP"):
        torchlab.load(tmp_path / "m.pt")
    checkpoint["model"]["name"] = "no-such-model"
    save_checkpoint(checkpoint, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="unknown model"):
        torchlab.load(tmp_path / "m.pt")


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_checkpoint_meta_is_a_typed_record_and_a_plain_dict_still_works():
    from torchlab.engine.checkpoint import CheckpointMeta

    given = {
        "task": "digit-mlp",
        "model_name": "digit-mlp",
        "model_kwargs": {"hidden": 12},
        "recipe": "seed",
        "seed": 3,
        "config": {"hidden": 12},
        "normalization": {"divide_by": 16.0},
    }
    meta = CheckpointMeta.of(given)
    assert meta == CheckpointMeta(
        task="digit-mlp",
        model_name="digit-mlp",
        model_kwargs={"hidden": 12},
        recipe="seed",
        seed=3,
        config={"hidden": 12},
        extra={"normalization": {"divide_by": 16.0}},
    )
    assert CheckpointMeta.of(meta) is meta
    assert given["task"] == "digit-mlp" and len(given) == 7  # the caller's dict is left whole
    assert CheckpointMeta.of({"seed": 1}).recipe is None and CheckpointMeta.of({"seed": 1}).config is None
    assert CheckpointMeta.of({}) == CheckpointMeta() and CheckpointMeta().task == "custom"


def test_checkpoint_meta_writes_the_model_spec_settings_and_extra_fields_once(tmp_path):
    from torchlab.engine.checkpoint import CheckpointMeta

    torch.manual_seed(1)
    model = build_model("digit-mlp", hidden=12)
    meta = CheckpointMeta(
        task="digit-mlp",
        model_name="digit-mlp",
        model_kwargs={"hidden": 12},
        recipe="seed",
        seed=7,
        config={"hidden": 12, "lr": 0.1},
        extra={"normalization": {"divide_by": 16.0}},
    )
    checkpoint = meta.checkpoint(model, epoch=2, history=[{"epoch": 1}, {"epoch": 2}])
    assert checkpoint["task"] == "digit-mlp" and checkpoint["epoch"] == 2 and len(checkpoint["history"]) == 2
    assert checkpoint["model"] == {"name": "digit-mlp", "class": "DigitMLP", "kwargs": {"hidden": 12}}
    assert (checkpoint["recipe"], checkpoint["seed"], checkpoint["config"]) == ("seed", 7, {"hidden": 12, "lr": 0.1})
    assert checkpoint["normalization"] == {"divide_by": 16.0}
    assert not {"model_name", "model_kwargs", "extra", "hparams"} & set(checkpoint)
    save_checkpoint(checkpoint, tmp_path / "m.pt")
    loaded, _ = torchlab.load(tmp_path / "m.pt")  # rebuilt by name from the record's spec
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())
    # a Trainer used on its own: no settings written, the model named by its class
    bare = CheckpointMeta().checkpoint(torch.nn.Linear(2, 1), epoch=1)
    assert bare["task"] == "custom" and bare["model"] == {"name": "Linear", "class": "Linear", "kwargs": {}}
    assert not {"recipe", "seed", "config"} & set(bare)
    assert CheckpointMeta(seed=0).checkpoint(torch.nn.Linear(2, 1))["seed"] == 0  # 0 is a seed, not "none"
