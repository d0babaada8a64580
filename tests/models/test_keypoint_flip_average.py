"""keypoint-net's test-time flip averaging: the mirror of a face gets the mirrored keypoints, a
mirror-symmetric face gets a mirror-symmetric answer, and training still sees one pass."""

from __future__ import annotations

import pytest
import torch

from torchlab.data.keypoints_augment import flip_keypoints
from torchlab.models import build_model
from torchlab.tasks.keypoints.config import KeypointConfig


def net(flip_average: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("keypoint-net", width=8, flip_average=flip_average).double()
    with torch.no_grad():  # a prior and weights far from symmetric, so one pass is visibly not
        model.prior.normal_(0, 2)
    return model.eval()


def faces(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 1, 96, 96, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_the_mirror_of_a_face_gets_the_mirrored_keypoints():
    x = faces()
    plain, averaged = net(False), net(True)
    with torch.no_grad():
        assert not torch.allclose(plain(x.flip(-1)), flip_keypoints(plain(x)), atol=1e-3)  # one pass is not
        torch.testing.assert_close(averaged(x.flip(-1)), flip_keypoints(averaged(x)))


@pytest.mark.parametrize("flip_sum", [95.0, 97.3])
def test_a_mirror_symmetric_face_gets_mirror_symmetric_keypoints(flip_sum):
    half = faces()[..., :48]
    x = torch.cat([half, half.flip(-1)], dim=-1)  # column j equals column 95 - j
    model = net(True)
    model.flip_sum = flip_sum  # the labels' mirror convention, from the config
    with torch.no_grad():
        pred = model(x)
        torch.testing.assert_close(flip_keypoints(pred, flip_sum), pred)
        # the eyes of a symmetric face sit at mirrored columns: x_left + x_right = flip_sum
        torch.testing.assert_close(pred[:, 0] + pred[:, 2], torch.full((3,), flip_sum, dtype=torch.float64))


def test_the_average_is_of_the_two_passes_and_training_sees_one():
    x = faces()
    model = net(True)
    with torch.no_grad():
        one = model.keypoints(x)
        mirrored = flip_keypoints(model.keypoints(x.flip(-1)))
        torch.testing.assert_close(model(x), (one + mirrored) / 2)
        model.train()
        torch.testing.assert_close(model(x), model.keypoints(x))


def test_the_config_puts_it_in_the_checkpoints_model_arguments():
    mean = [48.0] * 30
    assert KeypointConfig().model_kwargs(mean)["flip_average"] is False
    assert KeypointConfig(flip_average=True).model_kwargs(mean)["flip_average"] is True


def test_the_flip_probability_reaches_the_augmentation():
    from torchlab.tasks.keypoints.train import make_augment

    assert make_augment(KeypointConfig(flip=0.0)).flip == 0.0
    augment = make_augment(KeypointConfig(flip=0.25, flip_sum=96.0))
    assert (augment.flip, augment.flip_sum) == (0.25, 96.0)
    assert make_augment(KeypointConfig()).flip == 0.5
    assert make_augment(KeypointConfig(augment=False)) is None


def test_each_augmentation_strength_reaches_the_augmentation():
    from torchlab.tasks.keypoints.train import make_augment

    strengths = {"degrees": 15.0, "scale": 0.1, "shift": 3.0, "brightness": 0.05, "contrast": 0.4}
    augment = make_augment(KeypointConfig(**strengths))
    assert {name: getattr(augment, name) for name in strengths} == strengths
    recipe = make_augment(KeypointConfig())
    assert (recipe.degrees, recipe.scale, recipe.shift, recipe.brightness, recipe.contrast) == (
        12.0,
        0.08,
        5.0,
        0.15,
        0.25,
    )


def test_the_flip_and_the_net_use_the_configs_mirror():
    """A config's flip_sum reaches the augmentation and the net; none is the geometric 95 (a run on a CSV sets
    flip_sum to the mirror it measures: tests/tasks/keypoints/test_keypoints_mirror.py)."""
    from torchlab.tasks.keypoints.train import make_augment

    mean = [48.0] * 30
    assert KeypointConfig().mirror_sum() == 95.0 == KeypointConfig(data="training.csv").mirror_sum()
    measured = KeypointConfig(data="training.csv", flip_sum=96.4)
    assert measured.mirror_sum() == 96.4
    assert make_augment(measured).flip_sum == 96.4 and measured.model_kwargs(mean)["flip_sum"] == 96.4
