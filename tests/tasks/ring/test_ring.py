"""The hand-set ring net, the ring geometry, `torchlab ring` and the trained ring-mlp."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import torchlab
from torchlab.cli.main import main
from torchlab.data.ring import (
    SEED_ANSWERS,
    SEED_TEST_POINTS,
    best_diamond,
    disk_diamond_overlap,
    in_l1_ring,
    misclassified_area,
    two_circles,
)
from torchlab.models import build_model, count_parameters


def test_seed_matrices_and_31_parameters():
    net = build_model("ring-net")
    assert count_parameters(net) == 31
    assert net.layer1.weight.tolist() == [[1, 0], [-1, 0], [0, 1], [0, -1]] and net.layer1.bias.tolist() == [0] * 4
    assert net.layer2.weight.tolist() == [[-2] * 4, [-1] * 4, [1] * 4]
    assert net.layer2.bias.tolist() == [3, 2, -2]
    assert net.output.weight.tolist() == [[-1, 1, -1]] and net.output.bias.tolist() == [0]


def test_the_seven_test_points_give_the_notebook_answers():
    net = build_model("ring-net")
    x = torch.tensor(SEED_TEST_POINTS)
    assert net.in_ring(x).tolist() == SEED_ANSWERS == [False, True, True, True, True, True, False]
    assert net.score(x).tolist() == pytest.approx([-1.0, 0.0, 0.1, 0.0, 0.3, 0.0, -0.1], abs=1e-6)
    assert net.in_ring(x).dtype == torch.bool and net.score(x).shape == (7,)


def test_half_and_one_and_a_half_variant():
    net = build_model("ring-net", a=0.5, b=1.5)
    assert net.layer2.bias.tolist() == [2.0, 1.5, -1.5]
    points = torch.tensor([[0.0, 0.0], [0.2, 0.2], [0.5, 0.0], [0.6, 0.3], [1.0, 0.4], [0.75, 0.75], [1.5, 0.1]])
    assert net.in_ring(points).tolist() == [False, False, True, True, True, True, False]
    assert net.score(torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.5)  # the middle of the ring: highest score


@pytest.mark.parametrize("a,b", [(1.0, 2.0), (0.5, 1.5), (0.0, 1.0), (2.0, 2.5)])
def test_net_is_exactly_the_l1_ring(a, b):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(20000, 2, generator=g) * 2 - 1) * (b + 1)
    l1 = x.abs().sum(1)
    clear = ((l1 - a).abs() > 1e-4) & ((l1 - b).abs() > 1e-4)  # float round-off only matters on the edges
    net = build_model("ring-net", a=a, b=b)
    with torch.no_grad():
        assert torch.equal(net.in_ring(x)[clear], in_l1_ring(x, a, b)[clear])


def test_exact_areas():
    assert float(misclassified_area(1, 2, 1, 2)) == pytest.approx(5 * math.pi - 10)  # 5.7080
    g = np.random.default_rng(0)
    p = g.uniform(-3, 3, size=(400_000, 2))
    for radius, s in [(1.0, 1.2), (2.0, 2.5), (1.0, 0.5), (1.0, 3.0)]:
        sampled = np.mean((np.hypot(p[:, 0], p[:, 1]) <= radius) & (np.abs(p).sum(1) <= s)) * 36
        assert float(disk_diamond_overlap(radius, s)) == pytest.approx(sampled, rel=0.02)


def test_best_diamond_is_sqrt_8_5_times_the_radii():
    a2, b2, area = best_diamond(1.0, 2.0)
    assert a2 == pytest.approx(math.sqrt(1.6), abs=1e-4) and b2 == pytest.approx(2 * math.sqrt(1.6), abs=1e-4)
    assert area == pytest.approx(2.8379, abs=1e-3)
    assert (5 * math.pi - 10 - area) / (5 * math.pi - 10) > 0.5  # halves the misclassified area


def test_ring_command_prints_numbers_and_draws(tmp_path, capsys):
    assert main(["ring", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "31 parameters" in out and "matches_notebook: True" in out and "agrees_with_l1_ring: True" in out
    assert "point (1.1, 0): score +0.1000, in ring True" in out
    assert "misclassified_area: 5.7080" in out and "misclassified_fraction: 0.6056" in out
    assert "best_diamond: a'=1.2649, b'=2.5298" in out and "50.3% less" in out
    grid = float(out.split("1000x1000 grid: ")[1].split(")")[0])
    assert grid == pytest.approx(5 * math.pi - 10, rel=0.01)  # the net itself, measured, agrees with the formula
    for name in ("ring_regions.png", "ring_misclassified.png"):
        _assert_png(tmp_path / "figures" / name)
    assert main(["ring", "--a", "0.5", "--b", "1.5", "--point", "1,0.4", "--point", "1.5,0.1", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert (
        "point (1, 0.4): score +0.1000, in ring True" in out and "point (1.5, 0.1): score -0.1000, in ring False" in out
    )
    assert main(["ring", "--a", "2", "--b", "1"]) == 2
    assert "0 <= a < b" in capsys.readouterr().err


def test_two_circles_match_the_assignment():
    x, y = two_circles(100)
    radius = x.norm(dim=1)
    assert x.shape == (200, 2) and y.tolist() == [1.0] * 100 + [0.0] * 100
    assert torch.allclose(radius[:100], torch.tensor(1.1)) and torch.allclose(radius[100:], torch.tensor(3.0))
    assert len(torch.unique(x, dim=0)) == 200


def test_trained_net_beats_the_hand_set_one_and_loads_back(tmp_path, capsys):
    out = tmp_path / "ring"
    assert (
        main(
            [
                "train",
                "ring-mlp",
                "--points",
                "1000",
                "--epochs",
                "400",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert float(lines["test_accuracy"]) > 0.92
    assert 0.70 < float(lines["hand_set_accuracy"]) < 0.85  # the L1 ring misses ~23% of the 5x5 box's area
    _assert_png(out / "figures" / "decision_map.png")
    model, meta = torchlab.load(out / "best.pt")
    assert count_parameters(model) == 65 and meta["data"]["dataset"] == "ring"
    assert meta["metrics"]["test_accuracy"] == pytest.approx(float(lines["test_accuracy"]), abs=1e-4)
    assert main(["evaluate", str(out / "best.pt"), "--device", "cpu"]) == 0
    assert f"accuracy: {float(lines['test_accuracy']):.4f}" in capsys.readouterr().out
    assert main(["predict", str(out / "best.pt"), "1.5,0", "0,0", "--device", "cpu"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert "(1.5, 0): in ring True" in text[0] and "(0, 0): in ring False" in text[1]


def test_trained_net_separates_the_two_circles(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "ring-mlp",
                "--dataset",
                "circles",
                "--epochs",
                "300",
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
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["train_points"] == "140" and lines["test_points"] == "60"
    assert float(lines["test_accuracy"]) == 1.0 and float(lines["hand_set_accuracy"]) == 1.0


def _assert_png(path) -> None:
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) > 300
        assert np.asarray(img.convert("L")).std() > 5  # not a blank canvas
