"""The README's Python example runs as printed (after `torchlab train digit-mlp`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from torchlab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs(tmp_path, capsys, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "digit-mlp", "--no-figures", "--epochs", "3"]) == 0
    capsys.readouterr()
    exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("digit-mlp 0.")
    best_epoch, best_accuracy, _ = lines[1].split(" ", 2)
    assert 1 <= int(best_epoch) <= 30 and float(best_accuracy) > 0.9
    assert sorted(os.listdir(tmp_path / "runs" / "mine")) == ["best.pt", "history.csv", "last.pt"]
