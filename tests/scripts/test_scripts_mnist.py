"""scripts/train_mnist.py: runs with --help, and for one small epoch on a tiny fake MNIST set,
writing a checkpoint that `torchlab predict` (the mnist task) reads back."""

from __future__ import annotations

import re

import torchlab
from conftest import run_script
from mnist_files import write_mnist


def test_train_mnist_script_one_small_epoch(tmp_path):
    assert "torchrun --nproc_per_node=2 scripts/train_mnist.py" in run_script("train_mnist.py", "--help")

    root = write_mnist(tmp_path / "mnist", n_train=300, n_test=50)
    out = tmp_path / "run"
    stdout = run_script(
        "train_mnist.py",
        "--device",
        "cpu",
        "--data-dir",
        str(root),
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--batch-size",
        "32",
        "--out",
        str(out),
    )
    match = re.search(r"1 epochs in [\d.]+ s; best val_loss [\d.]+ \(epoch 1\); test accuracy ([\d.]+)", stdout)
    assert match, stdout
    assert 0.0 <= float(match.group(1)) <= 1.0
    for name in ("curves", "confusion", "misclassified", "filters", "feature_maps_0"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0, name
    assert re.search(r"best\.pt \(epoch 1\) says test\[0\] is a \d \(probability [01]\.\d{3}\); the label is 0", stdout)

    # the script's checkpoint is an mnist checkpoint: the task's predict and evaluate read it
    _, meta = torchlab.load(out / "best.pt")
    assert meta["task"] == "mnist" and meta["model"]["name"] == "mnist-cnn" and meta["normalization"]["std"] > 0
    records = torchlab.predict(out / "best.pt", index=[0], data_dir=str(root), device="cpu")
    assert records[0]["input"] == "test[0]" and records[0]["true"] == "0"
    metrics = torchlab.evaluate(out / "best.pt", data_dir=str(root), device="cpu")
    assert metrics["samples"] == 50 and f"{metrics['accuracy']:.4f}" == match.group(1)
