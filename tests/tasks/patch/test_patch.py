"""patch-linear: data, the seed's manual loop, autograd, least squares, figures, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import torchlab
from torchlab.cli.main import main
from torchlab.data.patch import PatchScaling, design_matrix, photo_patch, ramp_patch
from torchlab.errors import DataError, TrainingError
from torchlab.tasks.patch.train import describe_residuals, least_squares, manual_descent


def _weights_in_gray_levels(checkpoint) -> torch.Tensor:
    model, meta = torchlab.load(checkpoint)
    norm = meta["normalization"]
    return PatchScaling(norm["coord_divisor"], norm["brightness_divisor"]).to_original(model.weight.detach().double())


def test_ramp_is_the_seed_formula_clipped():
    exact = ramp_patch(32, noise=0.0)
    assert exact.shape == (32, 32)
    assert exact[3, 5] == pytest.approx(80 + 1.2 * 5 + 0.8 * 3)  # row y=3, column x=5
    noisy = ramp_patch(32, seed=1)
    assert np.array_equal(noisy, ramp_patch(32, seed=1))
    assert 1.5 < np.std(noisy - exact) < 2.5
    assert ramp_patch(8, intercept=250, slope_x=10, noise=0).max() == 255.0


def test_design_matrix_rows_are_1_x_y_row_by_row():
    patch = np.arange(12.0).reshape(3, 4)
    rows, targets = design_matrix(patch)
    assert rows.shape == (12, 3) and targets.shape == (12,)
    k = 2 * 4 + 1  # y = 2, x = 1
    assert rows[k].tolist() == [1.0, 1.0, 2.0]
    assert targets[k] == patch[2, 1]


def test_manual_step_is_two_over_n_x_transpose_err():
    rows, targets = design_matrix(ramp_patch(8))
    w, losses = manual_descent(rows, targets, lr=1e-3, epochs=1)
    expected = -1e-3 * (2 / 64) * (rows.T @ (-targets))  # from w = 0, err = -I
    assert torch.allclose(w, expected)
    assert losses[0] == pytest.approx(float(targets @ targets) / 64)


def test_scaling_maps_weights_back_exactly():
    rows, targets = design_matrix(ramp_patch(32))
    scaling = PatchScaling.unit(32)
    scaled_rows, scaled_targets = scaling.apply(rows, targets)
    assert float(scaled_rows[:, 1:].max()) == 1.0 and float(scaled_targets.max()) <= 1.0
    back = scaling.to_original(least_squares(scaled_rows, scaled_targets))
    assert torch.allclose(back, least_squares(rows, targets), rtol=1e-9, atol=1e-9)


def test_seed_recipe_on_raw_pixels_stops_far_from_least_squares():
    rows, targets = design_matrix(ramp_patch(32))
    w, losses = manual_descent(rows, targets, lr=1e-4, epochs=800)
    exact = least_squares(rows, targets)
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # the error trends downward ...
    assert abs(float(w[0]) - float(exact[0])) > 50  # ... but the intercept has hardly moved after 800 epochs
    with pytest.raises(TrainingError, match="divide --lr by 10"):
        manual_descent(rows, targets, lr=0.01, epochs=400)


@pytest.mark.parametrize("mode", ["manual", "autograd"])
def test_scaled_descent_matches_least_squares_and_recovers_slopes(tmp_path, capsys, mode):
    out = tmp_path / mode
    assert (
        main(
            [
                "train",
                "patch-linear",
                "--ramp",
                "--mode",
                mode,
                "--epochs",
                "500",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-figures",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    w = _weights_in_gray_levels(out / "best.pt")
    rows, targets = design_matrix(ramp_patch(32, seed=0))
    exact = least_squares(rows, targets)
    assert float(torch.linalg.norm(w - exact) / torch.linalg.norm(exact)) < 1e-3
    assert torch.allclose(w, exact, rtol=1e-3)  # every weight, the slopes included
    assert abs(float(w[1]) - 1.2) < 0.05 and abs(float(w[2]) - 0.8) < 0.05
    assert "lstsq_weights: [80.0701, 1.1990, 0.7902]" in printed
    assert "about the ramp's noise level 2" in printed


def test_manual_and_autograd_take_the_same_steps(tmp_path, capsys):
    weights = []
    for mode in ("manual", "autograd"):
        out = tmp_path / mode
        main(
            [
                "train",
                "patch-linear",
                "--ramp",
                "--no-scale",
                "--lr",
                "1e-4",
                "--epochs",
                "50",
                "--mode",
                mode,
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-figures",
                "--no-progress",
            ]
        )
        weights.append(torchlab.load(out / "best.pt")[0].weight.detach())
    capsys.readouterr()
    assert torch.allclose(weights[0], weights[1], rtol=1e-5, atol=1e-6)


def test_default_photo_figures_evaluate_and_predict(tmp_path, capsys):
    out = tmp_path / "photo"
    assert main(["train", "patch-linear", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "data: grace_hopper.jpg rows 144..175, cols 256..287" in printed
    assert "relative_difference" in printed and "residual_rms" in printed and "quarter" in printed
    for name in ("loss.png", "panels.png"):
        _assert_png(out / "figures" / name)
    from PIL import Image

    from torchlab.data.patch import default_photo

    gray = np.asarray(Image.open(default_photo()).convert("L"), dtype=float)
    assert np.allclose(photo_patch(), gray[144:176, 256:288], atol=0.5)
    checkpoint = str(out / "best.pt")
    assert main(["evaluate", checkpoint, "--device", "cpu"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines()[1:])
    assert float(lines["mse"]) == pytest.approx(float(lines["lstsq_mse"]), rel=1e-4)
    assert main(["predict", checkpoint, "3,17", "--index", "0", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "x=3, y=17: brightness" in text and "pixel 0 (x=0, y=0)" in text and "(patch:" in text


def test_residual_report_finds_the_bright_spot():
    patch = ramp_patch(16, noise=0.0)
    spot = patch.copy()
    spot[5, 3] += 40
    rows, _ = design_matrix(spot)
    report = describe_residuals(spot, patch, best_mse=0.0)
    assert report["largest_at"] == (5, 3)
    assert report["worst_quarter"] == "top-left"
    assert report["residual_rms"] == pytest.approx(40 / 16)
    assert "stopped short" in report["interpretation"]  # patch (the ramp) is not the best fit to spot


def test_bad_crop_and_bad_flags_fail_in_one_line_before_writing(tmp_path, capsys):
    with pytest.raises(DataError, match="does not fit"):
        photo_patch(row=590)
    out = tmp_path / "never"
    assert main(["train", "patch-linear", "--row", "590", "--out", str(out)]) == 2
    assert "does not fit in grace_hopper.jpg" in capsys.readouterr().err
    assert main(["train", "patch-linear", "--mode", "manual", "--batch-size", "64", "--out", str(out)]) == 2
    assert "--batch-size needs --mode autograd" in capsys.readouterr().err
    assert main(["train", "patch-linear", "--image", str(tmp_path / "missing.jpg"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def _assert_png(path) -> None:
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) > 300
        assert np.asarray(img.convert("L")).std() > 5  # not a blank canvas
    assert math.isfinite(path.stat().st_size)


@pytest.mark.parametrize(
    "flags, advice",
    [
        (["--epochs", "20"], "Train longer (--epochs) or raise --lr."),  # scaled: no --scale advice
        (["--no-scale", "--lr", "1e-4", "--epochs", "20"], "use --scale"),
    ],
)
def test_one_mse_everywhere_and_advice_that_fits_the_run(tmp_path, capsys, flags, advice):
    """final_mse used to be the loss before the last step while the interpretation quoted another MSE,
    and the advice said --scale to a run that already had it."""
    import re

    assert (
        main(
            [
                "train",
                "patch-linear",
                *flags,
                "--out",
                str(tmp_path),
                "--device",
                "cpu",
                "--no-figures",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    final = float(re.search(r"^final_mse: ([\d.]+)", out, re.M).group(1))
    quoted = float(re.search(r"its MSE is ([\d.]+) against", out).group(1))
    assert quoted == pytest.approx(final, abs=0.05)
    assert advice in out and (advice == "use --scale" or "--scale" not in out.split("interpretation:")[1])
