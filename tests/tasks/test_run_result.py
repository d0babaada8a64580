"""Run.result: a RunResult's metrics are the run's metrics, not every number its summary prints."""

from __future__ import annotations

import pytest
import torch

import torchlab
from torchlab.config import TrainConfig
from torchlab.runtime.distributed import World
from torchlab.tasks.run import Run

# The summaries the tasks print (their numeric entries), and which of them are metrics.
SUMMARIES = {
    "digit-mlp": ({"epochs": 20, "fit_seconds": 0.48, "test_accuracy": 0.98}, {"test_accuracy"}),
    "mnist": (
        {"train_samples": 54000, "epochs": 4, "fit_seconds": 16.5, "val_accuracy": 0.991, "test_accuracy": 0.992},
        {"val_accuracy", "test_accuracy"},
    ),
    "ring-mlp": (
        {
            "train_points": 1400,
            "test_points": 600,
            "epochs": 2000,
            "fit_seconds": 1.2,
            "train_loss": 0.1,
            "test_accuracy": 0.97,
            "hand_set_accuracy": 0.77,
        },
        {"train_loss", "test_accuracy", "hand_set_accuracy"},
    ),
    "keypoint-net": (
        {
            "train_rows": 1800,
            "val_rows": 200,
            "epochs": 15,
            "best_epoch": 12,
            "fit_seconds": 64.0,
            "val_rmse_px": 1.27,
            "baseline_rmse_px": 7.15,
            "augment": True,
        },
        {"val_rmse_px", "baseline_rmse_px"},
    ),
    "patch-linear": (
        {
            "epochs": 300,
            "lr": 0.5,
            "scale": True,
            "final_mse": 201.9,
            "lstsq_mse": 201.9,
            "residual_rms": 14.21,
            "relative_difference": "1.7e-07",
        },
        {"final_mse", "lstsq_mse", "residual_rms"},
    ),
}


@pytest.mark.parametrize("task", sorted(SUMMARIES))
def test_result_metrics_leave_out_counts_durations_and_settings(task, tmp_path):
    summary, metrics = SUMMARIES[task]
    run = Run(task, "default", TrainConfig(), torch.device("cpu"), World(), tmp_path, 0, False, False, False)
    result = run.result(None, {"task": task, **summary, "checkpoint": str(tmp_path / "best.pt")})
    assert result.metrics == {name: float(summary[name]) for name in metrics}
    assert result.summary["fit_seconds" if "fit_seconds" in summary else "epochs"]  # still printed, just not a metric


def test_a_trained_run_reports_its_metrics_only(tmp_path):
    result = torchlab.train("ring-mlp", out=tmp_path, device="cpu", progress=False, figures=False, epochs=3, points=200)
    assert set(result.metrics) == {"train_loss", "test_accuracy", "hand_set_accuracy"}
    assert result.metrics["test_accuracy"] == result.summary["test_accuracy"]
    assert {"train_points", "test_points", "fit_seconds"} <= set(result.summary)
