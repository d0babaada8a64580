"""Faces found in any photo (issue 14 point 5): detection, framing like the training faces, crop/resize/back-map,
several faces per photo, faces given by hand, and the fall-back to the center square (with a note)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torchlab
from torchlab.cli.main import main
from torchlab.data.keypoints import COORD_COLUMNS, IMAGE_SIZE, parse_images
from torchlab.errors import UsageError
from torchlab.tasks.keypoints.faces import (
    INSTALL_HINT,
    Box,
    check_box,
    detect_faces,
    face_square,
    face_to_photo,
    parse_box,
    photo_to_face,
)
from torchlab.tasks.keypoints.infer import predict
from torchlab.tasks.run import InferenceOptions

REAL_FACES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "faces" / "training.csv.gz"
# where the two dev-set faces go on a 640x420 background: (left, top), enlargement
PLACES = (((40, 60), 1.5), ((330, 20), 2.0))


@pytest.fixture
def checkpoint(tiny_keypoint_checkpoint):
    return tiny_keypoint_checkpoint


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    """A photo holding the first two real faces of the dev set, 1.5x and 2x enlarged; their true eye centers."""
    if not REAL_FACES.is_file():
        pytest.skip(f"the real faces are not in {REAL_FACES.parent}")
    import pandas as pd

    frame = pd.read_csv(REAL_FACES, nrows=2)
    images = parse_images(frame["Image"].tolist())
    keypoints = frame[list(COORD_COLUMNS)].to_numpy(np.float64).reshape(2, -1, 2)
    y, x = np.mgrid[0:420, 0:640]
    photo = 90 + 60 * x / 640 + 20 * np.sin(y / 37.0)  # a smooth, uneven background
    eyes, squares = [], []
    for ((left, top), scale), face, points in zip(PLACES, images, keypoints):
        side = round(IMAGE_SIZE * scale)
        photo[top : top + side, left : left + side] = np.asarray(
            Image.fromarray(face).resize((side, side), Image.Resampling.BILINEAR)
        )
        # a training face's pixel j (centered at j) covers [j, j + 1) * scale of the pasted square
        eyes.append(np.array([left, top]) + (points[:2] + 0.5) * scale - 0.5)
        squares.append((left, top, side))
    path = tmp_path_factory.mktemp("photo") / "two_faces.png"
    Image.fromarray(photo.astype(np.uint8)).convert("RGB").save(path)
    return path, photo / 255.0, eyes, squares


def test_both_real_faces_are_found_and_framed_like_the_training_faces(two_faces):
    pytest.importorskip("cv2")
    _, gray, eyes, squares = two_faces
    boxes = detect_faces(gray)
    assert len(boxes) == 2 and boxes[0].x < boxes[1].x
    for box, (left, top, side) in zip(boxes, squares):
        x0, y0, seen = face_square(box)
        # the square the model sees is the pasted training square, give or take the detector's spread
        assert 0.85 < seen / side < 1.15
        assert abs((x0 + seen / 2) - (left + side / 2)) < 0.1 * side
        assert abs((y0 + seen / 2) - (top + side / 2)) < 0.1 * side


def test_true_eye_centers_survive_crop_resize_and_back_map(two_faces):
    """A perfect model sees each eye where the crop put it; mapped back, it lands on the true eye (< 10% IOD)."""
    pytest.importorskip("cv2")
    _, gray, eyes, _ = two_faces
    for box, eye in zip(detect_faces(gray), eyes):
        square = face_square(box)
        face, crop = photo_to_face(gray, square)
        assert crop == square and face.shape == (IMAGE_SIZE, IMAGE_SIZE)
        x0, y0, side = square
        seen = (eye - np.array([x0, y0]) + 0.5) * IMAGE_SIZE / side - 0.5  # the eyes in the model's 96x96 input
        assert np.all((seen > 10) & (seen < 86))  # well inside the face the model sees
        back = face_to_photo(seen, square)
        inter_ocular = np.linalg.norm(eye[0] - eye[1])
        assert np.linalg.norm(back - eye, axis=1).max() < 0.1 * inter_ocular


@pytest.mark.parametrize("square", [(37, 21, 150), (-20, 5, 60), (100, 90, 200), (5, 7, 300), (3, 3, 40)])
def test_a_blob_is_seen_where_the_back_map_puts_it(square):
    """The crop/resize the model sees and face_to_photo agree to a tenth of a model pixel: a round blob's centroid
    in the 96x96 input maps back onto the blob (squares larger and smaller than 96 px, one past the photo's edge).
    Dropping the half-pixel terms of the pixel-centered map would miss by 0.18 to 0.7 model pixels here."""
    x0, y0, side = square
    blob = np.array([x0 + 0.55 * side + 0.3, y0 + 0.4 * side + 0.7])
    y, x = np.mgrid[0:400, 0:420]
    gray = np.exp(-((x - blob[0]) ** 2 + (y - blob[1]) ** 2) / (2 * (0.05 * side) ** 2)).astype(np.float32)
    face, _ = photo_to_face(gray, square)
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    seen = np.array([(face * xs).sum(), (face * ys).sum()]) / face.sum()
    np.testing.assert_allclose(face_to_photo(seen, square), blob, atol=0.1 * side / IMAGE_SIZE)


def test_two_faces_give_two_records_and_one_overlay(two_faces, checkpoint, tmp_path, capsys):
    pytest.importorskip("cv2")
    path, gray, eyes, _ = two_faces
    out = tmp_path / "res"
    assert main(["predict", str(checkpoint), str(path), "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert f"{path} face 1 of 2 (detector box x " in text and f"{path} face 2 of 2 (detector box x " in text
    records = json.loads((out / "predictions.json").read_text())
    assert [r["face"] for r in records] == [1, 2] and all(r["found_by"] == "detector" for r in records)
    assert records[0]["overlay"] == records[1]["overlay"] == str(out / "two_faces_keypoints.png")
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json", "two_faces_keypoints.png"]
    assert (out / "two_faces_keypoints.png").stat().st_size > 20_000
    # each face's keypoints are the model's prediction on that face's own square, mapped back
    model, _ = torchlab.load(checkpoint, device="cpu")
    for record, _eye in zip(records, eyes):
        square = (record["crop"]["x"], record["crop"]["y"], record["crop"]["size"])
        assert square == face_square(Box(**record["box"]))
        small, _ = photo_to_face(gray.astype(np.float32), square)
        with torch.no_grad():
            pred = model(torch.from_numpy(small / 255).float()[None, None])[0].reshape(15, 2).numpy()
        got = np.array([[p["x"], p["y"]] for p in record["keypoints"].values()])
        np.testing.assert_allclose(got, face_to_photo(pred, square), atol=1e-3)


def test_a_box_given_by_hand_is_used_instead_of_the_detector(two_faces, checkpoint):
    path, _, _, squares = two_faces
    model, meta = torchlab.load(checkpoint, device="cpu")
    left, top, side = squares[1]
    options = InferenceOptions(boxes=((left + 10, top + 10, side - 40, side - 40),))
    [record] = predict(model, meta, [str(path)], options)
    assert record["found_by"] == "box" and record["box"] == {
        "x": left + 10,
        "y": top + 10,
        "w": side - 40,
        "h": side - 40,
    }
    assert (record["crop"]["x"], record["crop"]["y"], record["crop"]["size"]) == face_square(Box(**record["box"]))
    assert record["note"] is None
    with pytest.raises(UsageError, match="one photo"):
        predict(model, meta, [str(path), str(path)], options)
    with pytest.raises(UsageError, match="at least 24 pixels"):
        predict(model, meta, [str(path)], InferenceOptions(boxes=((10, 10, 5, 5),)))
    with pytest.raises(UsageError, match="not on the 640x420 photo"):
        predict(model, meta, [str(path)], InferenceOptions(boxes=((900, 10, 50, 50),)))


def test_box_flag_values_are_parsed_and_checked():
    assert parse_box("150,100.5,220,220") == (150.0, 100.5, 220.0, 220.0)
    for bad in ("150,100,220", "a,b,c,d", ""):
        with pytest.raises(UsageError, match="--box takes X,Y,W,H"):
            parse_box(bad)
    with pytest.raises(UsageError, match="finite"):
        check_box((float("nan"), 0, 30, 30), 100, 100)


def gray_photo(path: Path, size: tuple[int, int] = (200, 120), value: int = 128) -> Path:
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)
    return path


def test_no_face_found_falls_back_to_the_center_square_with_a_note(checkpoint, tmp_path, capsys):
    pytest.importorskip("cv2")
    photo = gray_photo(tmp_path / "wall.png")
    assert main(["predict", str(checkpoint), str(photo), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{photo} face 1 of 1 (center square x 40, y 0, 120x120): 15 keypoints")
    assert lines[1] == (
        "  note: the detector found no frontal face, so the keypoints are for the center square; "
        "give the face with --box X,Y,W,H"
    )


def test_without_opencv_the_center_square_is_used_and_only_an_explicit_request_fails(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    photo = gray_photo(tmp_path / "me.png")
    model, meta = torchlab.load(checkpoint, device="cpu")
    [record] = predict(model, meta, [str(photo)], InferenceOptions())
    assert record["found_by"] == "center crop" and record["crop"] == {"x": 40, "y": 0, "size": 120}
    assert INSTALL_HINT in record["note"]
    with pytest.raises(UsageError, match=r"face detection needs OpenCV: pip install torchlab\[faces\]"):
        predict(model, meta, [str(photo)], InferenceOptions(detect=True))
    [record] = predict(model, meta, [str(photo)], InferenceOptions(detect=False))
    assert record["found_by"] == "center crop" and record["note"] is None
    assert list(tmp_path.iterdir()) == [photo]  # no --out: nothing written


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation(checkpoint, tmp_path):
    """A camera stores a portrait shot as a landscape image plus an orientation tag; the faces stand upright only
    when the tag is applied, and the keypoints must be in the pixels a viewer (and the overlay) shows."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    path = tmp_path / "portrait.jpg"
    Image.fromarray(np.full((120, 200), 100, np.uint8)).save(path, exif=exif)
    model, meta = torchlab.load(checkpoint, device="cpu")
    [record] = predict(model, meta, [str(path)], InferenceOptions(detect=False, out=str(tmp_path / "res")))
    assert (record["width"], record["height"]) == (120, 200)
    assert record["crop"] == {"x": 0, "y": 40, "size": 120}
    assert Image.open(record["overlay"]).size[1] > Image.open(record["overlay"]).size[0]  # drawn upright too
