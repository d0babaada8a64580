"""Hostile input: random bytes where a checkpoint (or a data file) belongs, and absurd command-line
values, end in a one-line DataError / CheckpointError / usage error with exit status 2: never a
traceback, a hang or a partial file."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchlab
from torchlab.cli.main import main
from torchlab.engine.checkpoint import make_checkpoint, read_checkpoint, save_checkpoint
from torchlab.errors import CheckpointError
from torchlab.models import build_model
from torchlab.tasks import task_names

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_one_line_error(capsys, status: int) -> str:
    captured = capsys.readouterr()
    assert status == 2
    err = captured.err.strip()
    assert err and "\n" not in err and "Traceback" not in err, captured.err
    assert err.startswith("torchlab"), err
    return err


# ------------------------------------------------------------------ checkpoints
@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_as_checkpoint(tmp_path, data):
    path = tmp_path / "random.pt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        torchlab.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.fixture(scope="module")
def good_checkpoint_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    model = build_model("digit-mlp", hidden=8)
    save_checkpoint(
        make_checkpoint(task="digit-mlp", model_name="digit-mlp", model=model, model_kwargs={"hidden": 8}, epoch=1),
        path,
    )
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_corrupted_checkpoint_loads_or_fails_cleanly(tmp_path, good_checkpoint_bytes, data):
    """Flip, cut or splice bytes of a real checkpoint: it either still loads or raises CheckpointError."""
    raw = bytearray(good_checkpoint_bytes)
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if kind == "flip":
        raw[at] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        raw = raw[:at]
    else:
        raw[at:at] = data.draw(st.binary(min_size=1, max_size=64))
    path = tmp_path / "corrupt.pt"
    path.write_bytes(bytes(raw))
    try:
        model, meta = torchlab.load(path)
    except CheckpointError as exc:
        assert "\n" not in str(exc)
    else:
        assert meta["task"] == "digit-mlp" and sum(p.numel() for p in model.parameters()) > 0


def test_checkpoint_with_wrong_types_inside(tmp_path):
    """A torchlab marker over nonsense (model spec not a dict, kwargs of the wrong kind) is a CheckpointError."""
    for model_entry in ({"name": "digit-mlp", "kwargs": {"hidden": "many"}}, {"name": "no-such-model"}):
        path = tmp_path / "odd.pt"
        torch.save(
            {
                "format": "torchlab-checkpoint",
                "format_version": 1,
                "task": "digit-mlp",
                "model": model_entry,
                "state_dict": {},
            },
            path,
        )
        with pytest.raises(CheckpointError):
            torchlab.load(path)
    torch.save(
        {"format": "torchlab-checkpoint", "format_version": 99, "task": "x", "model": {}, "state_dict": {}}, path
    )
    with pytest.raises(CheckpointError, match="newer torchlab"):
        read_checkpoint(path)


# ------------------------------------------------------------- command line
ABSURD = [
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--patience", "-2"], "--patience"),
    (["--min-delta", "-1"], "--min-delta"),
    (["--grad-clip", "0"], "--grad-clip"),
    (["--seed", "-5"], "--seed"),
    (["--device", "tpu9"], "device"),
    (["--device", "cuda:99"], "cuda"),
    (["--recipe", "no-such-recipe"], "--recipe"),
    (["--epochs", "many"], "--epochs"),
]


@pytest.mark.parametrize("task", task_names())
@pytest.mark.parametrize("flags, names", ABSURD, ids=[" ".join(f) for f, _ in ABSURD])
def test_absurd_training_flags(tmp_path, capsys, task, flags, names):
    out = tmp_path / "out"
    try:
        status = main(["train", task, *flags, "--out", str(out), "--no-progress", "--no-figures"])
    except SystemExit as exc:  # argparse: invalid choice / not a number
        status = exc.code
    err = assert_one_line_error(capsys, status)
    assert names in err
    assert not out.exists()  # validated before anything is written


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "no-such-task"], "invalid choice"),
        (["no-such-command"], "invalid choice"),
        (["evaluate", "missing.pt"], "does not exist"),
        (["predict", ".", "--index", "0"], "is a folder"),
        (["summary", "digit-mlp", "--input-shape", "0"], ">= 1"),
        (["summary", "digit-mlp", "--input-shape", "3", "3"], "does not fit"),
        (["summary", "no-such-model"], "unknown model"),
    ],
)
def test_absurd_commands(capsys, argv, words):
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    assert words in assert_one_line_error(capsys, status)


def test_output_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    status = main(["train", "digit-mlp", "--out", str(tmp_path / "taken"), "--epochs", "1", "--device", "cpu"])
    assert "taken" in assert_one_line_error(capsys, status)
    assert (tmp_path / "taken").read_text() == "not a folder"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    epochs=st.integers(max_value=0),
    lr=st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf)),
    batch=st.integers(max_value=0),
    which=st.sampled_from(["epochs", "lr", "batch"]),
)
def test_fuzzed_numbers_are_usage_errors(tmp_path, capsys, epochs, lr, batch, which):
    flag = {"epochs": ["--epochs", str(epochs)], "lr": [f"--lr={lr!r}"], "batch": ["--batch-size", str(batch)]}[which]
    status = main(["train", "digit-mlp", *flag, "--out", str(tmp_path / "fz"), "--device", "cpu"])
    assert assert_one_line_error(capsys, status)
    assert not (tmp_path / "fz").exists()


def test_nan_loss_is_a_training_error_with_the_last_good_checkpoint(tmp_path, capsys):
    """An absurd but valid learning rate blows the loss up: one line naming the fix, last.pt intact."""
    status = main(
        [
            "train",
            "digit-mlp",
            "--lr",
            "1e30",
            "--epochs",
            "3",
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
            "--no-figures",
            "--no-progress",
            "--recipe",
            "seed",
        ]
    )
    err = assert_one_line_error(capsys, status)
    assert "became" in err and "--lr" in err
    for path in tmp_path.glob("*.pt"):
        read_checkpoint(path)


def test_user_error_in_a_fresh_process_has_no_traceback(cli, tmp_path):
    proc = cli("train", "digit-mlp", "--epochs", "-3", "--out", tmp_path / "o")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--epochs" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ data files
def data_error_or(check, fn, *args):
    """Call fn: a TorchlabError is fine (one line); any result must pass `check`; anything else fails."""
    from torchlab.errors import TorchlabError

    try:
        result = fn(*args)
    except TorchlabError as exc:
        assert "\n" not in str(exc)
        return None
    assert check(result), result
    return result


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_as_idx(tmp_path, data):
    mnist = pytest.importorskip("torchlab.data.mnist")
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    data_error_or(lambda a: a.dtype.name == "uint8" and a.ndim >= 1, mnist.read_idx, path)


@FUZZ
@given(dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3), body=st.binary(max_size=256))
def test_idx_with_a_valid_magic_and_absurd_shape(tmp_path, dims, body):
    import struct

    mnist = pytest.importorskip("torchlab.data.mnist")
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(struct.pack(">HBB", 0, 8, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + body)
    data_error_or(lambda a: list(a.shape) == dims, mnist.read_idx, path)


@FUZZ
@given(body=st.binary(min_size=1, max_size=512))
def test_random_bytes_behind_a_gzip_header(tmp_path, body):
    mnist = pytest.importorskip("torchlab.data.mnist")
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body)
    data_error_or(lambda a: a.dtype.name == "uint8", mnist.read_idx, path)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_as_keypoints_csv(tmp_path, data):
    keypoints = pytest.importorskip("torchlab.data.keypoints")
    path = tmp_path / "training.csv"
    path.write_bytes(data)
    data_error_or(lambda table: table is not None, keypoints.read_training_csv, path)


@pytest.mark.parametrize(
    "coordinate, pixel",
    [
        ("nan", "0"),
        ("inf", "0"),
        ("-inf", "0"),
        ("40", "nan"),
        ("40", "inf"),
        ("40", "-1"),
        ("40", "256"),
        ("40", "1e400"),
    ],
)
def test_keypoints_csv_with_non_finite_or_out_of_range_values(tmp_path, coordinate, pixel):
    keypoints = pytest.importorskip("torchlab.data.keypoints")
    path = tmp_path / "training.csv"
    header = ",".join(keypoints.COORD_COLUMNS) + ",Image\n"
    path.write_text(header + ",".join([coordinate] * 30) + "," + " ".join([pixel] * keypoints.PIXELS) + "\n")
    with pytest.raises(torchlab.DataError) as info:
        keypoints.read_training_csv(path)
    assert "row 1" in str(info.value) and "\n" not in str(info.value)


def image_files(folder):
    """Images that are empty, truncated, of unusual modes and sizes, or hold NaN/inf."""
    import numpy as np
    from PIL import Image

    files = {"empty.png": b"", "truncated.png": b"\x89PNG\r\n\x1a\n" + bytes(range(40))}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(folder / "transparent.png")
    Image.new("I;16", (30, 30), 500).save(folder / "sixteen_bit.png")
    Image.new("CMYK", (30, 30), (0, 0, 0, 255)).save(folder / "cmyk.jpg")
    Image.new("1", (1, 1), 1).save(folder / "one_pixel.png")
    Image.new("L", (3, 900), 128).save(folder / "sliver.png")
    for label, value in (("nan", np.nan), ("inf", np.inf)):
        pixels = np.zeros((28, 28), np.float32)
        pixels[8:20, 12:16] = value
        Image.fromarray(pixels, mode="F").save(folder / f"{label}.tif")
    (folder / "folder.png").mkdir()
    return sorted(folder.iterdir())


def test_hostile_images_as_digit_features(tmp_path):
    import numpy as np

    from torchlab.data.digits_image import image_to_digit_features

    for path in image_files(tmp_path):
        data_error_or(
            lambda f: f.shape == (64,) and np.isfinite(f).all() and 0 <= f.min() and f.max() <= 16,
            image_to_digit_features,
            path,
        )


def test_predict_on_hostile_images_is_one_line(tmp_path, capsys):
    model = build_model("digit-mlp")
    save_checkpoint(
        make_checkpoint(task="digit-mlp", model_name="digit-mlp", model=model, model_kwargs={}), tmp_path / "m.pt"
    )
    images = tmp_path / "images"
    images.mkdir()
    for path in image_files(images):
        if path.name in ("empty.png", "truncated.png", "folder.png", "transparent.png"):
            status = main(["predict", str(tmp_path / "m.pt"), str(path), "--device", "cpu"])
            assert_one_line_error(capsys, status)
