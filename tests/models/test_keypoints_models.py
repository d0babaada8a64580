"""Keypoint models: the seed's parameter counts and torchsummary tables, the masked loss, soft-argmax."""

from __future__ import annotations

import torch
from torch import nn

from torchlab.cli.main import main
from torchlab.engine.metrics import masked_mse
from torchlab.models import build_model, count_parameters
from torchlab.models.keypoints import SoftArgmax2d
from torchlab.tasks.keypoints.kaggle import mean_keypoint_baseline, per_keypoint_rmse


def test_parameter_counts_match_the_seed():
    assert count_parameters(build_model("keypoint-fcn")) == 9_978_398
    assert count_parameters(build_model("keypoint-cnn")) == 3_406_494
    x = torch.rand(2, 1, 96, 96)
    for name in ("keypoint-fcn", "keypoint-cnn", "keypoint-net"):
        assert build_model(name).eval()(x).shape == (2, 30)


def test_summary_prints_the_seed_table(capsys):
    assert main(["summary", "keypoint-cnn"]) == 0
    out = capsys.readouterr().out
    for row in (
        "Conv2d-1           [-1, 32, 94, 94]             320",
        "MaxPool2d-6          [-1, 128, 10, 10]               0",
        "Linear-7                  [-1, 256]       3,277,056",
        "Dropout-10                  [-1, 128]               0",
        "Total params: 3,406,494",
        "Forward/backward pass size (MB): 4.42",
    ):
        assert row in out
    assert main(["summary", "keypoint-fcn"]) == 0
    out = capsys.readouterr().out
    assert "Linear-1                 [-1, 1024]       9,438,208" in out and "Params size (MB): 38.06" in out


def test_masked_loss_ignores_missing_coordinates():
    output = torch.randn(4, 30, requires_grad=True)
    target = torch.randn(4, 30)
    mask = torch.ones(4, 30)
    mask[1, 8:] = 0
    mask[3, 4:6] = 0
    loss = masked_mse(output, target * mask, mask)
    loss.backward()
    assert torch.all(output.grad[mask == 0] == 0)
    assert torch.all(output.grad[mask == 1] != 0)
    kept = mask == 1
    assert torch.allclose(loss, ((output - target)[kept] ** 2).mean())
    full = torch.ones(4, 30)
    assert torch.allclose(masked_mse(output, target, full), nn.MSELoss()(output, target))


def test_per_keypoint_rmse_and_baseline():
    truth = torch.zeros(3, 30)
    pred = truth.clone()
    pred[:, 0] = 3.0  # left eye x off by 3 px, y exact
    mask = torch.ones(3, 30)
    per = per_keypoint_rmse(pred.numpy(), truth.numpy(), mask.numpy())
    assert abs(per[0] - (9 / 2) ** 0.5) < 1e-6 and (per[1:] == 0).all()
    train = torch.tensor([[10.0] * 30, [20.0] * 30])
    assert (
        abs(mean_keypoint_baseline(train, torch.ones(2, 30), torch.full((1, 30), 18.0), torch.ones(1, 30)) - 3) < 1e-6
    )


def test_soft_argmax_finds_a_peak_in_pixels():
    maps = torch.full((1, 2, 24, 24), -1e4)
    maps[0, 0, 5, 10] = 0.0  # cell (row 5, col 10): pixels 40..43 across, 20..23 down
    maps[0, 1, 23, 0] = 0.0
    xy = SoftArgmax2d(stride=4)(maps)
    assert torch.allclose(xy, torch.tensor([[41.5, 21.5, 1.5, 93.5]]))
