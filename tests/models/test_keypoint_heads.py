"""keypoint-net's read-outs: 24x24 or 48x48 heat maps with a soft-argmax, or direct regression. Each
starts at the mean face, each is kept in the checkpoint's model arguments, and a bad name is refused."""

from __future__ import annotations

import pytest
import torch

from torchlab.models import build_model
from torchlab.models.keypoints import SoftArgmax2d
from torchlab.tasks.keypoints.config import HEADS, KeypointConfig

MEAN = [float(v) for v in torch.linspace(30.0, 66.0, 30)]  # keypoints well inside the face


def test_the_soft_argmax_of_a_one_hot_48_grid_map_is_its_pixel_center():
    maps = torch.full((1, 2, 48, 48), -1e4)
    maps[0, 0, 7, 30] = 0.0  # row 7, column 30: pixels 60..61 across, 14..15 down
    maps[0, 1, 47, 0] = 0.0
    xy = SoftArgmax2d(stride=2)(maps)
    torch.testing.assert_close(xy, torch.tensor([[60.5, 14.5, 0.5, 94.5]]))


@pytest.mark.parametrize("head", HEADS)
def test_every_head_starts_at_the_mean_face(head):
    torch.manual_seed(0)
    model = build_model("keypoint-net", width=8, mean_keypoints=MEAN, head=head).double().eval()
    last = model.regress if head == "regression" else model.heatmaps
    with torch.no_grad():
        last.weight.zero_()  # the image no longer matters: what is left is the starting point
        if head != "regression":
            last.bias.zero_()
        out = model(torch.rand(2, 1, 96, 96, dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([MEAN, MEAN], dtype=torch.float64), atol=1e-3, rtol=0)


def test_the_heads_differ_in_grid_and_layers():
    assert build_model("keypoint-net", width=8).prior.shape == (15, 24, 24)
    fine = build_model("keypoint-net", width=8, head="heatmap-48")
    assert fine.prior.shape == (15, 48, 48) and fine.soft_argmax.stride == 2
    direct = build_model("keypoint-net", width=8, head="regression")
    assert not hasattr(direct, "heatmaps") and direct.regress.out_features == 30
    x = torch.rand(3, 1, 96, 96)
    for model in (fine, direct):
        assert model.eval()(x).shape == (3, 30)


def test_a_bad_head_is_refused_by_name():
    with pytest.raises(ValueError, match="head must be one of heatmap-24, heatmap-48, regression, not 'big'"):
        build_model("keypoint-net", head="big")


def test_the_config_keeps_the_head_and_the_flip_convention_in_the_model_arguments():
    kwargs = KeypointConfig(head="regression", flip_sum=97.0, width=8).model_kwargs(MEAN)
    assert (kwargs["head"], kwargs["flip_sum"]) == ("regression", 97.0)
    assert KeypointConfig().model_kwargs(MEAN)["head"] == "heatmap-24"
    model = build_model("keypoint-net", **kwargs)
    assert model.head == "regression" and model.flip_sum == 97.0
