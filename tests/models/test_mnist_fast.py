"""mnist-fast (the `fast` recipe's model): its size, shapes, layers, and its place in `torchlab models`."""

from __future__ import annotations

import pytest
import torch

from torchlab.cli.main import main
from torchlab.models import build_model, count_parameters, get_model_spec
from torchlab.models.mnist import MnistFastCNN, feature_maps


def test_parameter_count_and_output_shape():
    model = build_model("mnist-fast")
    # conv 1->24 5x5 (624), conv 24->32 3x3 (6,944), 800->256 (205,056), 256->10 (2,570)
    assert count_parameters(model) == 215_194
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert build_model("mnist-fast", classes=2, hidden=64)(torch.zeros(1, 1, 28, 28)).shape == (1, 2)
    assert count_parameters(build_model("mnist-fast", channels=(8, 16), hidden=32)) == (
        8 * 25 + 8 + 16 * 8 * 9 + 16 + 400 * 32 + 32 + 32 * 10 + 10
    )


def test_layers_shrink_the_image_as_documented():
    maps = feature_maps(MnistFastCNN(), torch.zeros(1, 1, 28, 28))
    assert [(name, tuple(x.shape[1:])) for name, x in maps] == [
        ("conv1", (24, 12, 12)),
        ("relu1", (24, 12, 12)),  # 5x5 at stride 2: no first pooling
        ("conv2", (32, 10, 10)),
        ("pool2", (32, 5, 5)),
        ("relu2", (32, 5, 5)),
    ]


def test_bad_widths_are_refused():
    with pytest.raises(ValueError, match="two positive widths"):
        MnistFastCNN(channels=(24, 32, 64))
    with pytest.raises(ValueError, match="two positive widths"):
        MnistFastCNN(channels=(0, 32))


def test_listed_by_torchlab_models_with_its_parameter_count(capsys):
    assert get_model_spec("mnist-fast").input_shape == (1, 28, 28)
    assert main(["models"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["mnist-fast"])
    assert "215,194" in line or "215194" in line
