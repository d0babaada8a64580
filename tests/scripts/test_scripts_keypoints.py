"""scripts/train_keypoints.py runs for one small epoch and leaves a checkpoint `torchlab evaluate` can use."""

from __future__ import annotations

import re

import pytest

import torchlab
from conftest import run_script


def test_train_keypoints_script_one_small_epoch(tmp_path):
    stdout = run_script(
        "train_keypoints.py",
        "--device",
        "cpu",
        "--synthetic",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--width",
        "8",
        "--out",
        str(tmp_path),
    )
    found = re.search(
        r"1 epochs in [\d.]+ s on (\d+) faces; validation RMSE ([\d.]+) px \(mean face: ([\d.]+) px\)", stdout
    )
    assert found, stdout
    assert int(found.group(1)) == 62  # 64 faces less the seed's 10% of the complete ones
    assert re.search(r"best\.pt \(epoch 1\) puts validation face 0's nose tip at \(\d+\.\d, \d+\.\d\)", stdout)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "faces.png",
        "keypoint_rmse.png",
        "loss.png",
        "training_faces.png",
    ]
    # the checkpoint carries what `torchlab evaluate` needs to find the same validation faces
    metrics = torchlab.evaluate(tmp_path / "best.pt", device="cpu")
    assert metrics["val_rows"] == 2
    assert metrics["val_rmse_px"] == pytest.approx(float(found.group(2)), abs=1e-3)
    assert metrics["baseline_rmse_px"] == pytest.approx(float(found.group(3)), abs=1e-3)
