"""2->n->1 network landscapes: the notebook's value, kinks, linear pieces, `torchlab landscape`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlab.cli.main import main
from torchlab.lessons.landscape import activation_regions, count_pieces, count_pieces_numeric, kinks_on_line
from torchlab.models import build_model, count_parameters


def test_notebook_weights_give_minus_four_at_one_minus_one():
    net = build_model("landscape-net")
    assert net(torch.tensor([[1.0, -1.0]])).item() == -4.0
    assert net.hidden.weight.tolist() == [[1, -1], [2, 0], [-1, 2]] and net.hidden.bias.tolist() == [0, 1, -1]
    assert net.output.weight.tolist() == [[1, -2, 1]] and net.output.bias.tolist() == [0]
    assert count_parameters(net) == 13
    # a few more values by hand: relu(x1 - x2) - 2 relu(2 x1 + 1) + relu(-x1 + 2 x2 - 1)
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 1.0]])
    assert net(x).tolist() == [-2.0, -6.0, 2.0]


def test_random_weights_follow_the_seed():
    a, b = (
        build_model("landscape-net", hidden=8, weights="random", seed=3),
        build_model("landscape-net", hidden=8, weights="random", seed=3),
    )
    c = build_model("landscape-net", hidden=8, weights="random", seed=4)
    assert torch.equal(a.hidden.weight, b.hidden.weight) and not torch.equal(a.hidden.weight, c.hidden.weight)
    assert a.hidden.weight.shape == (8, 2) and a.output.weight.shape == (1, 8)
    with pytest.raises(ValueError, match="hidden=3"):
        build_model("landscape-net", hidden=8, weights="seed")


def test_notebook_net_kinks_on_a_line_by_hand():
    # on x2 = 0.5 x1 + 0.3: unit 1 is 0.5 x1 - 0.3 (kink at 0.6), unit 2 is 2 x1 + 1 (kink at -0.5),
    # unit 3 is the constant -0.4 (parallel to the line: no kink)
    net = build_model("landscape-net")
    assert kinks_on_line(net, 0.5, 0.3) == pytest.approx([-0.5, 0.6])
    assert count_pieces(net, 0.5, 0.3) == 3 == count_pieces_numeric(net, 0.5, 0.3, -2, 2)
    assert activation_regions(net) == 7  # three lines in general position cut the plane into 7 pieces


@pytest.mark.parametrize("n", [1, 3, 8])
def test_pieces_along_a_line_for_n_1_3_8(n):
    for seed in range(4):
        net = build_model("landscape-net", hidden=n, weights="random", seed=seed)
        assert count_pieces(net, 0.5, 0.3) == n + 1  # every unit bends a generic line once
        for a, b in [(0.5, 0.3), (-1.3, 0.7), (2.0, -0.4)]:
            inside = count_pieces(net, a, b, -2.0, 2.0)
            assert 1 <= inside <= n + 1
            assert count_pieces_numeric(net, a, b, -2.0, 2.0) == inside  # autograd slopes agree with the kinks


def test_landscape_command(tmp_path, capsys):
    assert main(["landscape", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "phi(1, -1): -4.0000" in out and "linear_pieces_in_view: 7" in out
    for n in (1, 3, 8):
        assert f"pieces n={n}: {n + 1} on the whole line" in out
    for name in ("landscape_surface.png", "landscape_contour.png", "landscape_pieces.png"):
        from PIL import Image

        with Image.open(tmp_path / "figures" / name) as img:
            assert img.format == "PNG" and min(img.size) > 300 and np.asarray(img.convert("L")).std() > 5
    assert main(["landscape", "--hidden", "5", "--no-figures"]) == 2
    assert "--weights random" in capsys.readouterr().err
    assert main(["landscape", "--hidden", "5", "--weights", "random", "--compare", "2", "--no-figures"]) == 0
    assert "pieces n=2: 3 on the whole line" in capsys.readouterr().out
