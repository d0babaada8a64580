"""Gradient descent on the bowl f and ascent on the mountain B: exact paths, divergence, the command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlab.cli.main import main
from torchlab.lessons.descent import BOWL, MOUNTAIN, gradient, gradient_path, path_summary


def test_autograd_gradients_are_the_hand_derived_ones():
    for x, y in [(2.5, 1.5), (0.0, 0.0), (-1.0, 3.0)]:
        p = torch.tensor([x, y], dtype=torch.float64)
        assert gradient(BOWL.fn, p).tolist() == pytest.approx([6 * (x - 1), 2 * y])
        assert gradient(MOUNTAIN.fn, p).tolist() == pytest.approx([-6 * (x - 10), -2 * (y - 3)])
    assert float(MOUNTAIN.fn(torch.tensor(0.0), torch.tensor(0.0))) == 3691.0  # the notebook's starting height


@pytest.mark.parametrize("eta", [0.05, 0.1, 0.25, 0.35])
def test_paths_follow_the_closed_form(eta):
    k = torch.arange(21, dtype=torch.float64)
    bowl = gradient_path(BOWL, eta, 20)
    assert torch.allclose(bowl[:, 0] - 1, 1.5 * (1 - 6 * eta) ** k)
    assert torch.allclose(bowl[:, 1], 1.5 * (1 - 2 * eta) ** k)
    mountain = gradient_path(MOUNTAIN, eta, 20)
    assert torch.allclose(mountain[:, 0] - 10, -10 * (1 - 6 * eta) ** k)
    assert torch.allclose(mountain[:, 1] - 3, -3 * (1 - 2 * eta) ** k)


def test_converges_below_one_third_and_diverges_above():
    assert BOWL.largest_stable_eta == pytest.approx(1 / 3)
    for problem in (BOWL, MOUNTAIN):
        assert path_summary(problem, gradient_path(problem, 0.1, 200))["status"] == "converged"
        assert path_summary(problem, gradient_path(problem, 0.33, 200))["status"] in ("converging", "converged")
        assert path_summary(problem, gradient_path(problem, 0.34, 200))["status"] == "diverges"
    end = gradient_path(MOUNTAIN, 1.0, 3)[-1]  # eta = 1: x - 10 is multiplied by -5 each step
    assert end[0].item() == pytest.approx(10 - 10 * (-5) ** 3)
    summit = gradient_path(MOUNTAIN, 0.1, 60)[-1]
    assert summit.tolist() == pytest.approx([10.0, 3.0], abs=1e-4)
    assert float(MOUNTAIN.fn(summit[0], summit[1])) == pytest.approx(4000.0)


def test_descent_command(tmp_path, capsys):
    assert main(["descent", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "descent eta=0.1: after 20 steps at (1, 0.01729)" in out
    assert "descent eta=0.35:" in out and out.count(": diverges") == 2
    assert "ascent eta=0.1:" in out and "eta < 0.3333 converges" in out
    from PIL import Image

    for name in ("descent_bowl.png", "ascent_mountain.png"):
        with Image.open(tmp_path / "figures" / name) as img:
            assert img.format == "PNG" and min(img.size) > 300 and np.asarray(img.convert("L")).std() > 5
    assert main(["descent", "--eta", "0", "--no-figures"]) == 2
    assert "--eta must be a finite number > 0" in capsys.readouterr().err
