"""The flip's mirror comes from the data: measured on a run's own training faces (tasks/keypoints/mirror.py),
used by the flip augmentation and flip averaging, kept in the checkpoint and said in the summary;
--flip-sum sets it by hand, synthetic faces are drawn with the geometric 95, and a resumed run keeps the
value its last.pt recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torchlab
from torchlab.data.keypoints import KeypointTable, to_tensors
from torchlab.data.keypoints_augment import KeypointAugment, flip_keypoints
from torchlab.data.synthetic_faces import format_training_csv, make_faces
from torchlab.engine.checkpoint import atomic_write_text, read_checkpoint
from torchlab.tasks.keypoints import train as keypoint_train
from torchlab.tasks.keypoints.config import KeypointConfig
from torchlab.tasks.keypoints.mirror import Mirror, measure_mirror, mirror_sums

TINY = {"width": 4, "epochs": 1, "batch_size": 16, "device": "cpu", "progress": False, "figures": False}


class ConventionNet(nn.Module):
    """A net that learned a labeling convention exactly: on the mirror image of face i it puts each keypoint where
    the face's drawing puts it (the geometric mirror of the drawn points) plus the labels' offset in x."""

    def __init__(self, images: torch.Tensor, drawn: np.ndarray, offset: float) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # so that the model has a device
        truth = flip_keypoints(torch.from_numpy(drawn).double(), 95.0)
        truth[:, 0::2] += offset
        self.answers = {image.flip(-1).numpy().tobytes(): answer for image, answer in zip(images, truth)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.answers[image.numpy().tobytes()] for image in x]).float()


@pytest.mark.parametrize(("offset", "mirror"), [(0.0, 95.0), (1.0, 97.0)])
def test_the_measure_finds_the_mirror_the_labels_were_drawn_with(offset, mirror):
    """Faces drawn pixel-centered (mirror 95), and the same faces labeled 1 px to the right (mirror 97)."""
    faces = make_faces(40, seed=2, missing=False)
    drawn = faces.keypoints.astype(np.float64)
    labels = faces.keypoints.copy()
    labels[:, 0::2] += offset
    unlabeled = np.random.default_rng(0).random((40, 15)) < 0.3  # some keypoints without labels, as in Kaggle's
    labels[unlabeled.repeat(2, axis=1)] = np.nan
    images, keypoints, mask = to_tensors(KeypointTable(faces.images, labels), np.arange(40))
    net = ConventionNet(images, drawn, offset)
    assert measure_mirror(net, images, keypoints, mask) == pytest.approx(mirror, abs=0.3)
    # and keypoint by keypoint: each point's mirror is its left/right partner's place, not its own
    assert np.nanmedian(mirror_sums(net, images, keypoints, mask), axis=0) == pytest.approx([mirror] * 15, abs=0.3)
    assert measure_mirror(net, images, keypoints, mask * 0) is None  # no labeled point: nothing to measure


def write_faces(path, offset: float, n: int = 60):
    faces = make_faces(n, seed=5)
    labels = faces.keypoints.copy()
    labels[:, 0::2] += offset  # the labels' mirror is 95 + 2 * offset
    atomic_write_text(path, format_training_csv(faces.images, labels))
    return str(path)


class Crash(Exception):
    """Ends a run after its first epoch, as a killed process would."""


def crash(trainer, row):
    raise Crash


def test_a_run_on_a_csv_measures_its_mirror_flips_with_it_and_keeps_it_on_resume(tmp_path, monkeypatch):
    used: list[float] = []
    real_call = KeypointAugment.__call__

    def call(self, batch, generator):
        if self.flip > 0:
            used.append(self.flip_sum)
        return real_call(self, batch, generator)

    monkeypatch.setattr(KeypointAugment, "__call__", call)
    found = {}
    for offset in (0.0, 1.0):  # the second run is killed after its first epoch (of 2)
        used.clear()
        out, data = tmp_path / str(offset), write_faces(tmp_path / f"{offset}.csv", offset)
        if offset == 0.0:
            result = torchlab.train("keypoint-net", "default", data=data, out=out, **TINY)
            assert result.summary["mirror"].startswith("x -> ")
        else:
            with pytest.raises(Crash):
                torchlab.train("keypoint-net", "default", data=data, out=out, callbacks=[crash], **dict(TINY, epochs=2))
        best = read_checkpoint(out / "best.pt")
        value = found[offset] = best["flip_sum"]
        if offset == 0.0:
            assert result.summary["mirror"] == f"x -> {value:.2f} - x ({best['mirror']})"
        assert best["mirror"].startswith("measured on the") and 91 <= value <= 99
        assert used and set(used) == {value}  # every flipped batch of the run used the measured mirror
        assert best["model"]["kwargs"]["flip_sum"] == value  # flip averaging at predict time uses it too
        model, _ = torchlab.load(out / "best.pt")
        assert model.flip_sum == value
    # labels 1 px to the right: the measured mirror moves by 2 px, as the labels' own mirror does
    assert found[1.0] - found[0.0] == pytest.approx(2.0, abs=0.3)

    # the killed run resumed: no second measurement, the recorded mirror in every flip and in the checkpoint
    def no_measuring(*args):
        raise AssertionError("a resumed run measured the mirror again")

    monkeypatch.setattr(keypoint_train, "measure_mirror", no_measuring)
    used.clear()
    out = tmp_path / "1.0"
    result = torchlab.train(
        "keypoint-net", "default", data=str(tmp_path / "1.0.csv"), out=out, resume=True, **dict(TINY, epochs=2)
    )
    last = read_checkpoint(out / "last.pt")
    assert last["epoch"] == 2 and last["flip_sum"] == last["model"]["kwargs"]["flip_sum"] == found[1.0]
    assert used and set(used) == {found[1.0]} and result.summary["mirror"].startswith(f"x -> {found[1.0]:.2f} - x")


def test_by_hand_for_synthetic_faces_and_without_flips_nothing_is_measured(tmp_path, monkeypatch, capsys):
    def no_training(*args, **kwargs):
        raise AssertionError("the mirror was measured")

    monkeypatch.setattr(keypoint_train, "Trainer", no_training)
    train_t = (torch.zeros(2, 1, 96, 96), torch.zeros(2, 30), torch.ones(2, 30))

    def find(**fields):
        cfg = KeypointConfig(**fields)
        return keypoint_train.find_mirror("keypoint-net", cfg, train_t, [48.0] * 30, torch.device("cpu"), 0)

    assert find(data="faces.csv", flip_sum=96.5) == Mirror(96.5, "set by --flip-sum")
    assert find() == Mirror(95.0, "geometric: synthetic faces are drawn pixel-centered")
    assert find(data="faces.csv", flip=0.0) == Mirror(95.0, "geometric: this run flips no face")
    assert find(data="faces.csv", augment=False) == Mirror(95.0, "geometric: this run flips no face")
    # the CLI's --flip-sum: the summary says so, the checkpoint keeps it
    from torchlab.cli.main import main

    data = write_faces(tmp_path / "faces.csv", 0.0, n=30)
    assert (
        main(
            [
                "train",
                "keypoint-net",
                "--recipe",
                "default",
                "--data",
                data,
                "--out",
                str(tmp_path / "o"),
                "--width",
                "4",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--no-figures",
                "--no-progress",
                "--flip-sum",
                "96.5",
            ]
        )
        == 0
    )
    assert "mirror: x -> 96.50 - x (set by --flip-sum)" in capsys.readouterr().out
    assert read_checkpoint(tmp_path / "o" / "best.pt")["model"]["kwargs"]["flip_sum"] == 96.5
