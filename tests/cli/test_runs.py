"""`torchlab runs` and `torchlab show`: a run's task, recipe, epochs, best value and test metrics at a glance."""

from __future__ import annotations

import os

import pytest
from torch import nn

from torchlab.cli.main import main
from torchlab.engine.checkpoint import make_checkpoint, save_checkpoint
from torchlab.engine.checkpoint_writer import write_history_csv

HISTORY = [
    {
        "epoch": e,
        "train_loss": 10.0 / e,
        "val_loss": 9.0 / e if e <= 5 else 2.0 + e / 10,
        "val_rmse": 3.0,
        "seconds": 1.5,
    }
    for e in range(1, 8)
]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """checkpoints/ with a trained digit-mlp run, a hand-written keypoint run, a history-only run and a broken one."""
    monkeypatch.chdir(tmp_path)
    assert (
        main(["train", "digit-mlp", "--out", "checkpoints/digit-mlp", "--epochs", "2", "--no-figures", "--no-progress"])
        == 0
    )
    keypoints = tmp_path / "checkpoints" / "faces" / "cnn"
    ckpt = make_checkpoint(
        task="keypoint-cnn",
        model_name="keypoint-cnn",
        model=nn.Linear(2, 2),
        model_kwargs={},
        recipe="seed",
        epoch=7,
        epochs=30,
        history=HISTORY,
        metrics={**HISTORY[-1], "test_rmse": 2.7},
        best={"monitor": "val_loss", "mode": "min", "value": 1.8, "epoch": 5},
        config={"epochs": 30, "lr": 0.01},
        normalization={"divide_by": 255.0},
    )
    save_checkpoint(ckpt, keypoints / "last.pt", keypoints / "best.pt")
    write_history_csv(HISTORY, tmp_path / "checkpoints" / "only-history" / "history.csv")
    (tmp_path / "checkpoints" / "broken").mkdir()
    (tmp_path / "checkpoints" / "broken" / "best.pt").write_bytes(b"not a checkpoint")
    return tmp_path


def table(text):
    lines = text.strip().splitlines()
    return {line.split()[0]: line.split() for line in lines[1:]}, lines[0].split()


def test_runs_lists_every_run_with_task_recipe_epochs_best_and_test(runs, capsys):
    capsys.readouterr()
    assert main(["runs"]) == 0
    rows, header = table(capsys.readouterr().out)
    assert header == ["run", "task", "recipe", "epochs", "best", "test", "date"]
    assert sorted(rows) == [
        "checkpoints/broken",
        "checkpoints/digit-mlp",
        "checkpoints/faces/cnn",
        "checkpoints/only-history",
    ]
    assert rows["checkpoints/faces/cnn"][1:9] == [
        "keypoint-cnn",
        "seed",
        "7/30",
        "val_loss",
        "1.8",
        "(epoch",
        "5)",
        "rmse",
    ]
    assert rows["checkpoints/faces/cnn"][9] == "2.7"
    digits = rows["checkpoints/digit-mlp"]
    assert digits[1:4] == ["digits", "default", "2/2"] and digits[4] == "val_loss"
    assert digits[6:8] == ["(epoch", "2)"] and digits[8] == "accuracy" and 0.5 < float(digits[9]) <= 1.0
    assert rows["checkpoints/only-history"][1:8] == ["-", "-", "7", "val_loss", "1.8", "(epoch", "5)"]
    assert "not a readable checkpoint" in " ".join(rows["checkpoints/broken"])


def test_runs_of_a_given_folder_and_a_missing_one(runs, capsys):
    assert main(["runs", os.path.join("checkpoints", "faces")]) == 0
    rows, _ = table(capsys.readouterr().out)
    assert list(rows) == [os.path.join("checkpoints", "faces", "cnn")]
    assert main(["runs", "nowhere"]) == 2
    assert "there is no folder nowhere" in capsys.readouterr().err
    (runs / "empty").mkdir()
    assert main(["runs", "empty"]) == 0
    assert capsys.readouterr().out.startswith("no runs under empty")


def test_show_summarizes_one_run(runs, capsys):
    capsys.readouterr()
    assert main(["show", "checkpoints/faces/cnn"]) == 0
    shown = dict(
        line.split(None, 1)
        if not line.startswith(("last epoch", "training time", "written by"))
        else (line[:13].strip(), line[13:].strip())
        for line in capsys.readouterr().out.splitlines()
    )
    assert shown["task"] == "keypoint-cnn" and shown["recipe"] == "seed" and shown["model"] == "keypoint-cnn"
    assert shown["epochs"] == "7/30 (stopped early)"
    assert shown["best"] == "val_loss 1.8 (epoch 5)"
    assert shown["test"] == "test_rmse=2.7"
    assert shown["training time"] == "10.5 s over 7 epochs"
    assert shown["settings"] == "epochs=30, lr=0.01"
    assert shown["files"] == "best.pt, last.pt"
    assert main(["show", "checkpoints/faces/cnn/best.pt"]) == 0  # a checkpoint file names its run
    assert "keypoint-cnn" in capsys.readouterr().out


def test_show_refuses_a_folder_that_is_not_a_run(runs, capsys):
    assert main(["show", "checkpoints"]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["show", "checkpoints/broken"]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
