"""The readable training scripts in scripts/: each runs for a short while and leaves a checkpoint that loads.

They run in this process (each script's `main(argv)`, its printed output captured); one test runs a
script as `python scripts/train_digits.py`, the way a reader starts it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import torchlab
from conftest import run_script

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_a_script_runs_as_a_program(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "train_digits.py"),
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--no-figures",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test accuracy" in proc.stdout and (tmp_path / "best.pt").is_file()


@pytest.mark.parametrize(
    "name", ["train_digits.py", "train_patch.py", "train_ring.py", "train_mnist.py", "train_keypoints.py"]
)
def test_every_script_has_help_with_the_device_flag(name):
    if not (SCRIPTS / name).exists():
        pytest.skip(f"{name} not written yet")
    out = run_script(name, "--help")
    assert "--device" in out and "torchrun" in out


def test_train_digits_script(tmp_path):
    out = run_script("train_digits.py", "--device", "cpu", "--epochs", "2", "--out", str(tmp_path))
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", out).group(1))
    assert accuracy > 0.5  # two epochs of the one-cycle schedule already learn most digits
    assert re.search(r"best\.pt \(epoch \d\) says test\[0\] is a \d; the label is 6", out)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "confusion.png",
        "loss.png",
        "misclassified.png",
        "prediction.png",
    ]
    model, meta = torchlab.load(tmp_path / "best.pt")
    assert meta["task"] == "digits" and sum(p.numel() for p in model.parameters()) == 2410


def test_train_patch_script_lands_on_least_squares(tmp_path):
    out = run_script("train_patch.py", "--device", "cpu", "--epochs", "300", "--out", str(tmp_path))
    gaps = [float(g) for g in re.findall(r"relative difference ([\d.e+-]+)\)", out)]
    assert len(gaps) == 2 and max(gaps) < 1e-3  # manual loop and autograd both reach least squares
    assert "last.pt (epoch 300)" in out and (tmp_path / "figures" / "panels.png").stat().st_size > 0


def test_train_ring_script(tmp_path):
    out = run_script("train_ring.py", "--device", "cpu", "--epochs", "150", "--out", str(tmp_path))
    assert float(re.search(r"test accuracy (\d\.\d+)", out).group(1)) > 0.6
    assert "last.pt (epoch 150)" in out  # written once, after the last epoch (fit_and_save)
    _, meta = torchlab.load(tmp_path / "last.pt")
    assert meta["epoch"] == 150
