"""Issue 11 for the keypoint tasks: predict writes only into --out (3), photos too small for a face are refused (7),
--synthetic is bounded by memory and drawing many faces shows progress (8)."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from PIL import Image

import torchlab
import torchlab.data.synthetic_faces as synthetic_faces
import torchlab.tasks.keypoints.train as keypoint_task
from torchlab.cli.main import main
from torchlab.data.synthetic_faces import write_lookup_csv, write_test_csv


@pytest.fixture
def checkpoint(tiny_keypoint_checkpoint):
    return tiny_keypoint_checkpoint


def one_line_error(capsys, status: int) -> str:
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def photo(path, width: int = 160, height: int = 120):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width), dtype=np.uint8)).save(path)
    return path


def test_predict_without_out_prints_and_writes_nothing_next_to_the_input(checkpoint, tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    me = photo(inputs / "me.png")
    test_csv = write_test_csv(inputs / "test.csv", 2)
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(checkpoint), str(me), str(test_csv), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "  left_eye_center: (" in text
    assert f"{test_csv}: keypoints of 2 faces (add --out FOLDER to write them as a table)" in text
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inputs", "me.png", "test.csv"]


def test_predict_writes_its_files_only_into_the_out_folder(checkpoint, tmp_path):
    me, test_csv = photo(tmp_path / "me.png"), write_test_csv(tmp_path / "test.csv", 2)
    records = torchlab.predict(checkpoint, [me, test_csv], device="cpu", out=str(tmp_path / "res"))
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == [
        "me_keypoints.png",
        "predictions.json",
        "test_keypoints.json",
    ]
    assert records[0]["overlay"] == str(tmp_path / "res" / "me_keypoints.png")
    assert records[-1]["written"] == str(tmp_path / "res" / "test_keypoints.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.png", "res", "test.csv"]


def test_a_failed_write_names_the_file_asked_for_not_a_temp_file(checkpoint, tmp_path, monkeypatch, capsys):
    import torchlab.runtime.files

    def refuse(*args, dir=None, prefix="", suffix="", **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}x1y2z3{suffix}")

    monkeypatch.setattr(torchlab.runtime.files.tempfile, "mkstemp", refuse)  # where atomic writes live
    me = photo(tmp_path / "me.png")
    err = one_line_error(
        capsys, main(["predict", str(checkpoint), str(me), "--out", str(tmp_path / "res"), "--device", "cpu"])
    )
    assert f"cannot write {tmp_path / 'res' / 'me_keypoints.png'}: Permission denied" in err
    assert ".tmp" not in err and "x1y2z3" not in err


def test_a_submission_needs_an_out_folder(checkpoint, tmp_path, capsys):
    test_csv = write_test_csv(tmp_path / "test.csv", 2)
    lookup = write_lookup_csv(tmp_path / "IdLookupTable.csv", [1, 2], features_per_image=3)
    err = one_line_error(
        capsys, main(["predict", str(checkpoint), str(test_csv), "--submission", str(lookup), "--device", "cpu"])
    )
    assert "--submission writes FOLDER/submission.csv: add --out FOLDER" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IdLookupTable.csv", "test.csv"]


@pytest.mark.parametrize("size", [(1, 1), (23, 200), (300, 12)])
def test_a_photo_too_small_for_a_face_is_refused(checkpoint, tmp_path, capsys, size):
    tiny = photo(tmp_path / "tiny.png", *size)
    err = one_line_error(capsys, main(["predict", str(checkpoint), str(tiny), "--device", "cpu"]))
    assert f"{tiny} is {size[0]}x{size[1]} pixels, too small to hold a face: a photo needs at least 24x24 pixels" in err


def test_a_photo_just_big_enough_is_predicted(checkpoint, tmp_path):
    [record] = torchlab.predict(checkpoint, [photo(tmp_path / "small.png", 24, 30)], device="cpu")
    assert record["crop"] == {"x": 0, "y": 3, "size": 24} and len(record["keypoints"]) == 15


def test_synthetic_beyond_memory_is_refused_before_drawing_a_face(tmp_path, monkeypatch, capsys):
    def never(n, *args, **kwargs):
        raise AssertionError(f"make_faces({n}) was called")

    monkeypatch.setattr(synthetic_faces, "make_faces", never)
    err = one_line_error(
        capsys,
        main(["train", "keypoint-net", "--synthetic", "1000000000", "--out", str(tmp_path / "o"), "--device", "cpu"]),
    )
    assert "--synthetic 1,000,000,000 would need about 70.0 TB of memory" in err and "lower --synthetic" in err
    assert not (tmp_path / "o").exists()


def test_drawing_many_synthetic_faces_shows_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(keypoint_task, "GENERATION_PROGRESS_FROM", 100)
    torchlab.train(
        "keypoint-net",
        out=tmp_path / "o",
        device="cpu",
        progress=True,
        figures=False,
        synthetic=300,
        width=4,
        epochs=1,
        batch_size=64,
        augment=False,
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("drawing synthetic faces")]
    assert lines == ["drawing synthetic faces: 256/300 (85%)", "drawing synthetic faces: 300/300 (100%)"]
