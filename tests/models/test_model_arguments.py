"""Issue 40, part 3 for models: constructor arguments are checked against the constructor before a model is
built, so a checkpoint whose model arguments are impossible (a negative width) is a one-line CheckpointError
naming the argument in evaluate, predict and export, not "Trying to create tensor with negative dimension"."""

from __future__ import annotations

import pytest

from torchlab.cli.main import main
from torchlab.engine.checkpoint import read_checkpoint, save_checkpoint
from torchlab.models import build_model, get_model_spec, model_names


@pytest.mark.parametrize("name", model_names())
def test_every_model_builds_with_its_defaults(name):
    spec = get_model_spec(name)
    assert build_model(name, **spec.defaults) is not None


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"width": -4}, "keypoint-net argument width must be a whole number >= 1, got -4"),
        ({"width": 0}, "width must be a whole number >= 1, got 0"),
        ({"width": 2.5}, "width must be a whole number >= 1, got 2.5"),
        ({"width": True}, "width must be a whole number >= 1, got True"),
        ({"prior_sigma": float("nan")}, "prior_sigma must be a finite number, got nan"),
        ({"flip_average": 1}, "flip_average must be true or false, got 1"),
        ({"mean_keypoints": [1.0, float("inf")]}, "mean_keypoints must be a list of finite numbers"),
    ],
)
def test_impossible_arguments_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        build_model("keypoint-net", **kwargs)


def test_unknown_arguments_and_list_sizes_are_refused():
    with pytest.raises(TypeError, match="keypoint-net takes no argument 'depth'"):
        build_model("keypoint-net", depth=3)
    with pytest.raises(ValueError, match="channels must be a list of whole numbers >= 1"):
        build_model("mnist-cnn", channels=[8, -16, 32])
    assert build_model("landscape-net", hidden=2, weights="random", seed=0) is not None  # a seed may be 0


def test_a_checkpoint_with_a_negative_width_is_one_line_in_evaluate_predict_and_export(
    tiny_keypoint_checkpoint, tmp_path, capsys
):
    checkpoint = read_checkpoint(tiny_keypoint_checkpoint)
    checkpoint["model"]["kwargs"]["width"] = -4
    bad = save_checkpoint(checkpoint, tmp_path / "best.pt")
    for argv in (
        ["evaluate", str(bad), "--device", "cpu"],
        ["predict", str(bad), "--index", "0", "--device", "cpu"],
        ["export", str(bad), "--out", str(tmp_path / "m.onnx")],
    ):
        status = main(argv)
        err = capsys.readouterr().err.strip()
        assert status == 2 and len(err.splitlines()) == 1, err
        assert (
            f"{bad} holds impossible model arguments (keypoint-net argument width must be a whole number >= 1, "
            "got -4)" in err
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_a_checkpoint_whose_model_would_not_fit_in_memory_is_refused_before_building(
    tiny_keypoint_checkpoint, tmp_path, capsys
):
    checkpoint = read_checkpoint(tiny_keypoint_checkpoint)
    checkpoint["model"]["kwargs"]["width"] = 200_000
    bad = save_checkpoint(checkpoint, tmp_path / "best.pt")
    status = main(["evaluate", str(bad), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and f"{bad} describes a model of" in err and "over the memory budget of" in err
