"""The digit MLP task end to end: recipes, accuracy, the CLI, predictions from a checkpoint alone."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import torchlab
from torchlab.cli.main import main
from torchlab.data.digits import load_digits_split
from torchlab.models import build_model, count_parameters


def test_digit_mlp_has_2410_parameters():
    assert count_parameters(build_model("digit-mlp")) == 2410


def test_split_is_the_seeds(capsys):
    data = load_digits_split()
    assert data.x_train.shape == (1437, 64) and data.x_test.shape == (360, 64)
    assert float(data.x_train.max()) == 1.0 and float(data.x_train.min()) == 0.0
    assert int(data.y_test[0]) == 6  # train_test_split(..., random_state=42) puts a 6 first


def test_default_recipe_reaches_097(tmp_path, capsys):
    assert main(["train", "digit-mlp", "--out", str(tmp_path), "--no-figures", "--no-progress"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test_accuracy: ")[1].split()[0])
    assert accuracy >= 0.97
    model, meta = torchlab.load(tmp_path / "best.pt")
    assert meta["metrics"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert meta["normalization"]["divide_by"] == 16.0


def test_seed_recipe_matches_the_notebook(tmp_path, capsys):
    assert main(["train", "digit-mlp", "--recipe", "seed", "--out", str(tmp_path), "--no-figures"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test_accuracy: ")[1].split()[0])
    assert "epochs: 100" in out
    assert 0.78 <= accuracy <= 0.90  # the notebook reports 0.850 after 100 full-batch steps


def test_same_seed_same_numbers(tmp_path, capsys):
    for name in ("a", "b"):
        main(["train", "digit-mlp", "--epochs", "3", "--seed", "5", "--out", str(tmp_path / name), "--no-figures"])
    a = torchlab.engine.checkpoint.read_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    b = torchlab.engine.checkpoint.read_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_resume_equals_uninterrupted_run(tmp_path, capsys):
    common = ["train", "digit-mlp", "--recipe", "seed", "--no-figures"]
    main(common + ["--epochs", "6", "--out", str(tmp_path / "straight")])
    main(common + ["--epochs", "3", "--out", str(tmp_path / "resumed")])
    main(common + ["--epochs", "6", "--out", str(tmp_path / "resumed"), "--resume"])
    a = torchlab.engine.checkpoint.read_checkpoint(tmp_path / "straight" / "last.pt")
    b = torchlab.engine.checkpoint.read_checkpoint(tmp_path / "resumed" / "last.pt")
    assert b["epoch"] == 6 and len(b["history"]) == 6
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_figures_are_written(tmp_path, capsys):
    main(["train", "digit-mlp", "--epochs", "2", "--out", str(tmp_path)])
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert names == ["confusion.png", "loss.png", "misclassified.png", "prediction.png"]
    assert all((tmp_path / "figures" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)


def test_train_then_predict_in_a_new_process(tmp_path, cli, capsys):
    """Trained in this process; `python -m torchlab predict` in a new one reads the checkpoint alone."""
    assert main(["train", "digit-mlp", "--epochs", "2", "--out", str(tmp_path), "--no-figures"]) == 0
    assert "test_accuracy: 0." in capsys.readouterr().out
    predicted = cli("predict", tmp_path / "best.pt", "--index", "0", "--index", "3")
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert re.fullmatch(r"test\[0\]: digit \d \(probability [01]\.\d{3}\) \(true 6\)", lines[0]), lines[0]
    probs = [float(p.split(":")[1]) for p in lines[1].split("probabilities: ")[1].split()]
    assert len(probs) == 10 and abs(sum(probs) - 1) < 0.01
    assert main(["evaluate", str(tmp_path / "best.pt")]) == 0 and "accuracy: 0." in capsys.readouterr().out


def test_predict_on_an_image_file(tmp_path, capsys):
    """A large, dark-on-light PNG of a test digit is read back as that digit."""
    from PIL import Image

    main(["train", "digit-mlp", "--out", str(tmp_path), "--no-figures"])
    data = load_digits_split()
    model, _ = torchlab.load(tmp_path / "best.pt")
    hits = 0
    for i in range(20):
        image = data.images_test[i] / 16.0
        big = np.kron(image, np.ones((12, 12)))  # 96x96, like a scan
        big = np.pad(1.0 - big, 20, constant_values=1.0)  # dark ink on white paper, with margin
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((big * 255).astype(np.uint8)).save(path)
        capsys.readouterr()
        assert main(["predict", str(tmp_path / "best.pt"), str(path)]) == 0
        predicted = int(capsys.readouterr().out.split(": digit ")[1].split()[0])
        hits += predicted == int(data.y_test[i])
    assert hits >= 17  # 8x8 -> 96x96 -> 8x8 is not lossless; ~93% come back right


def test_predict_errors(tmp_path, capsys):
    main(["train", "digit-mlp", "--epochs", "1", "--out", str(tmp_path), "--no-figures"])
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "best.pt"), "--index", "999"]) == 2
    assert "--index must be in 0..359" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "best.pt"), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("L", (40, 40), 255).save(blank)
    assert main(["predict", str(tmp_path / "best.pt"), str(blank)]) == 2
    assert "blank" in capsys.readouterr().err


def test_fast_loader_equals_scikit_learns_split():
    """load_digits_split reads sklearn's file directly; it must give exactly train_test_split(..., random_state=42)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from torchlab.data.digits import load_digits_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    split = load_digits_split()
    assert np.array_equal(split.x_train.double().numpy(), x_train / 16) and np.array_equal(
        split.images_test * 1.0, x_test.reshape(-1, 8, 8)
    )
    assert np.array_equal(split.y_train.numpy(), y_train) and np.array_equal(split.y_test.numpy(), y_test)
