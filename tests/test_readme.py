"""The README's Python example runs as printed (after `torchlab train digits`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from torchlab.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_readme_api_example_trains_mnist(tmp_path, capsys, monkeypatch):
    """The first block: torchlab.train / evaluate / predict on MNIST (a small synthetic IDX set in data/mnist)."""
    from mnist_files import write_mnist

    write_mnist(tmp_path / "data" / "mnist", n_train=600, n_test=100)
    monkeypatch.chdir(tmp_path)
    exec(compile(python_blocks()[0], "README.md", "exec"), {})
    test_accuracy, fit_seconds, checkpoint = capsys.readouterr().out.splitlines()[0].split()
    assert 0.0 <= float(test_accuracy) <= 1.0 and float(fit_seconds) > 0
    assert checkpoint == "checkpoints/mnist/best.pt" and (tmp_path / checkpoint).exists()


def test_readme_python_example_runs(tmp_path, capsys, monkeypatch):
    block = next(b for b in python_blocks() if "torchlab.Trainer(" in b)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "digits", "--no-figures", "--epochs", "3"]) == 0
    capsys.readouterr()
    exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("digits 0.")
    best_epoch, best_accuracy, _ = lines[1].split(" ", 2)
    assert 1 <= int(best_epoch) <= 30 and float(best_accuracy) > 0.9
    assert sorted(os.listdir(tmp_path / "runs" / "mine")) == ["best.pt", "history.csv", "last.pt"]
