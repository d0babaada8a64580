"""Issue 40, part 5: a valid checkpoint, image and CSV, mutated at random (bits flipped, bytes cut or inserted),
give through the command line either one line on stderr with exit status 2, or the correct result. In-process
(torchlab.cli.main.main), a few examples each, so the three together take a few seconds."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import torchlab
from torchlab.cli.main import main
from torchlab.data.keypoints import format_training_csv
from torchlab.data.synthetic_faces import make_faces
from torchlab.engine.checkpoint import read_checkpoint

FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def mutate(data: st.DataObject, raw: bytes, hot: range | None = None) -> bytes:
    """`raw` with one mutation: bits flipped at a position (one of the `hot` positions half of the time), the
    bytes cut there, or a few random bytes inserted there."""
    raw = bytearray(raw)
    kind = data.draw(st.sampled_from(["flip", "flip", "cut", "insert"]))
    if hot is not None and data.draw(st.booleans()):
        kind, at = "flip", data.draw(st.sampled_from(hot))
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
    if kind == "flip":
        raw[at] ^= data.draw(st.integers(1, 255))
    elif kind == "cut":
        raw = raw[:at]
    else:
        raw[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    return bytes(raw)


def run(capsys, argv: list[str]) -> tuple[int, str]:
    """(exit status, stdout); a failure must be one line on stderr with status 2, a success print nothing there."""
    status = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    if status != 0:
        assert status == 2 and len(err.splitlines()) == 1 and err.startswith("torchlab "), captured.err
    return status, captured.out


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A trained digit-mlp best.pt: its bytes, the positions of its largest weight's high bytes (sign and
    exponent of each float32: a flip there changes the predictions), and its metrics."""
    out = tmp_path_factory.mktemp("digits")
    torchlab.train("digit-mlp", out=out, device="cpu", progress=False, figures=False, epochs=2)
    raw = (out / "best.pt").read_bytes()
    weight = max(read_checkpoint(out / "best.pt")["state_dict"].values(), key=lambda t: t.numel())
    start = raw.find(weight.numpy().tobytes())
    metrics = torchlab.evaluate(out / "best.pt", device="cpu")
    return raw, range(start + 3, start + weight.numel() * 4, 4), metrics


@FUZZ
@given(data=st.data())
def test_a_mutated_checkpoint_is_refused_in_one_line_or_evaluates_exactly_as_before(digits, tmp_path, capsys, data):
    raw, weights, metrics = digits
    path = tmp_path / "best.pt"
    path.write_bytes(mutate(data, raw, weights))
    status, out = run(capsys, ["evaluate", str(path), "--device", "cpu"])
    if status == 0:  # the mutation missed everything that matters (zip padding, an unused header field)
        assert f"accuracy: {metrics['accuracy']:.4f}" in out


@pytest.fixture(scope="module")
def photo_bytes() -> bytes:
    from io import BytesIO

    pixels = np.zeros((40, 40), np.uint8)
    pixels[8:32, 18:22] = 255  # a "1"
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@FUZZ
@given(data=st.data())
def test_a_mutated_image_is_refused_in_one_line_or_predicted(digits, photo_bytes, tmp_path, capsys, data):
    raw, _, _ = digits
    (tmp_path / "m.pt").write_bytes(raw)
    photo = tmp_path / "digit.png"
    photo.write_bytes(mutate(data, photo_bytes))
    status, out = run(capsys, ["predict", str(tmp_path / "m.pt"), str(photo), "--device", "cpu"])
    if status == 0:
        found = re.search(r"digit (\d) \(probability ([0-9.]+)\)", out)
        assert found and 0.0 <= float(found.group(2)) <= 1.0, out


@pytest.fixture(scope="module")
def faces_csv() -> bytes:
    table = make_faces(12, seed=5)
    return format_training_csv(table.images, table.keypoints).encode()


@settings(FUZZ, max_examples=8)
@given(data=st.data(), compressed=st.booleans())
def test_a_mutated_keypoints_csv_is_refused_in_one_line_or_evaluated(
    tiny_keypoint_checkpoint, faces_csv, tmp_path, capsys, data, compressed
):
    path = tmp_path / ("faces.csv.gz" if compressed else "faces.csv")
    path.write_bytes(mutate(data, gzip.compress(faces_csv, mtime=0) if compressed else faces_csv))
    status, out = run(capsys, ["evaluate", str(tiny_keypoint_checkpoint), "--data", str(path), "--device", "cpu"])
    if status == 0:
        rmse = float(re.search(r"val_rmse_px: ([0-9.]+)", out).group(1))
        assert np.isfinite(rmse) and 0.0 <= rmse < 96 * 1.5
