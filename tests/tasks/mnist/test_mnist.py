"""MNIST: the IDX reader, binary subsets, each model learning, the task end to end on a small
synthetic MNIST folder, image preprocessing for predict, and (when ../shared/data/mnist exists)
a real-MNIST training run."""

from __future__ import annotations

import csv
import gzip
import json
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

import torchlab
from conftest import SHARED_MNIST
from mnist_files import idx_bytes, synthetic_digits, write_mnist
from torchlab.cli.main import main
from torchlab.data.mnist import binary_targets, find_file, load_mnist, random_affine, read_idx
from torchlab.errors import DataError, UsageError
from torchlab.models import build_model


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine two OpenMP threads wait on each other for ages."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------- reader
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_raw_and_gzip(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.gz" if gz else "x")
    data = idx_bytes(images)
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_read_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(idx_bytes(np.zeros(5), magic=0x00000D01))  # float magic
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte has magic number 0x00000d01"):
        read_idx(bad)
    short = tmp_path / "t10k-images-idx3-ubyte"
    short.write_bytes(idx_bytes(np.zeros((3, 28, 28)))[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is truncated: its header promises 3x28x28"):
        read_idx(short)
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "missing")
    notgz = tmp_path / "junk.gz"
    notgz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="junk.gz cannot be read"):
        read_idx(notgz)


def test_find_file_layouts_and_missing(tmp_path):
    write_mnist(tmp_path / "a", gz=False, layout="torchvision")
    assert (
        find_file(tmp_path / "a", "train-images-idx3-ubyte")
        == tmp_path / "a" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    )
    write_mnist(tmp_path / "b", gz=True, layout="flat")
    assert find_file(tmp_path / "b", "t10k-labels-idx1-ubyte").name == "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\[.gz\] not found in .*--download"):
        find_file(tmp_path / "empty", "train-images-idx3-ubyte")


def test_load_mnist_shapes_limit_and_mismatch(tmp_path):
    root = write_mnist(tmp_path)
    data = load_mnist(root, limit=100)
    assert data.x_train.shape == (100, 1, 28, 28) and data.x_test.shape == (200, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0
    assert data.y_train.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1] and data.classes == 10
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(7))))
    with pytest.raises(DataError, match="200 images but .* has 7 labels"):
        load_mnist(root)


def test_binary_subset_targets(tmp_path):
    labels = np.array([4, 5, 1, 5, 4, 9])
    keep, targets = binary_targets(labels, (4, 5))
    assert keep.tolist() == [True, True, False, True, True, False]
    assert targets.tolist() == [0.0, 1.0, 1.0, 0.0]  # "is it the second digit?"
    data = load_mnist(write_mnist(tmp_path), digits=[4, 5], limit=30)
    assert data.classes == 1 and data.class_names() == ["4", "5"] and len(data.y_train) == 30
    assert set(data.labels_train.tolist()) == {4, 5}
    np.testing.assert_array_equal(data.y_train.numpy(), (data.labels_train == 5).astype(np.float32))
    with pytest.raises(UsageError, match="two different digits"):
        load_mnist(tmp_path, digits=[3, 3])


def test_random_affine_keeps_shape_and_background():
    g = torch.Generator().manual_seed(0)
    x = torch.full((4, 1, 28, 28), -0.4)
    x[:, :, 10:18, 10:18] = 2.0
    out = random_affine(x, g)
    assert out.shape == x.shape
    assert torch.allclose(out[:, :, 0, 0], torch.tensor(-0.4))  # background comes in, not zeros
    assert not torch.allclose(out, x)


# ------------------------------------------------------------------- models
@pytest.mark.parametrize(
    "name,classes",
    [("mnist-linear", 1), ("mnist-mlp", 1), ("mnist-tiny-cnn", 1), ("mnist-simple-cnn", 10), ("mnist-cnn", 10)],
)
def test_each_model_learns(name, classes):
    torch.manual_seed(0)
    images, labels = synthetic_digits(64, seed=3)
    x = torch.from_numpy(images).float().unsqueeze(1) / 255.0
    if classes == 1:
        y = torch.from_numpy((labels >= 5).astype(np.float32))
        loss_fn = lambda out, t: torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(-1), t)  # noqa: E731
    else:
        y = torch.from_numpy(labels.astype(np.int64))
        loss_fn = torch.nn.functional.cross_entropy
    model = build_model(name, classes=classes)
    assert model(x).shape == (64, classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], (name, losses[0], losses[-1])


def test_tiny_cnn_matches_the_assignment_shapes():
    from torchlab.models.mnist import feature_maps

    model = build_model("mnist-tiny-cnn")
    maps = dict(feature_maps(model, torch.zeros(2, 1, 28, 28)))
    assert [tuple(maps[k].shape[1:]) for k in ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2")] == [
        (2, 28, 28),
        (2, 28, 28),
        (2, 14, 14),
        (4, 14, 14),
        (4, 14, 14),
        (4, 7, 7),
    ]
    assert sum(p.numel() for p in model.parameters()) == 1681


# --------------------------------------------------------- task end to end
def train_mnist(recipe: str = "default", **overrides) -> dict:
    """torchlab.train on the CPU without a progress bar or figures unless asked; returns the printed summary."""
    options = dict(device="cpu", progress=False, figures=False)
    options.update(overrides)
    return torchlab.train("mnist", recipe, **options).summary


def test_recipes_are_configs_with_the_old_values():
    long = torchlab.get_recipe("mnist", "long")
    assert long.epochs == 12 and long.channels == (32, 64, 128) and long.augment and long.label_smoothing == 0.1
    default = torchlab.get_recipe("mnist")
    assert (default.epochs, default.lr, default.batch_size, default.val_size) == (3, 2e-2, 128, None)
    assert (default.optimizer, default.schedule, default.warmup) == ("adamw", "onecycle", 0.25)
    for name in ("post", "assignment"):
        cfg = torchlab.get_recipe("mnist", name)
        assert (cfg.optimizer, cfg.schedule, cfg.init, cfg.normalize, cfg.val_size) == ("sgd", "none", 1.0, False, 0)
    assert (
        torchlab.get_recipe("mnist", "post").digits == (4, 5)
        and torchlab.get_recipe("mnist", "post").batch_size is None
    )
    assert torchlab.get_recipe("mnist", "assignment").limit == 1000
    # what used to be switched on behind the flags is now in the recipes: channels-last for the conv ones
    assert {
        n: (torchlab.get_recipe("mnist", n).amp, torchlab.get_recipe("mnist", n).channels_last)
        for n in torchlab.recipe_names("mnist")
    } == {
        "default": (True, True),
        "long": (True, True),
        "post": (True, False),
        "assignment": (True, True),
        "fast": (True, True),
    }


def test_command_line_flags_keep_their_spelling():
    from torchlab.cli.flags import overrides_from
    from torchlab.cli.main import build_parser

    argv = [
        "train",
        "mnist",
        "--data-dir",
        "d",
        "--download",
        "--digits",
        "4",
        "5",
        "--limit",
        "100",
        "--val-size",
        "10",
        "--no-augment",
        "--model",
        "mnist-mlp",
        "--channels",
        "4",
        "8",
        "16",
        "--hidden",
        "7",
        "--activation",
        "relu",
        "--label-smoothing",
        "0.1",
        "--threads",
        "1",
        "--fp32",
        "--batch-size",
        "none",
        "--channels-last",
    ]
    args = build_parser().parse_args(argv)
    cfg = torchlab.get_recipe("mnist", **overrides_from(args, args.task_entry))
    assert (cfg.data_dir, cfg.download, cfg.digits, cfg.limit, cfg.val_size, cfg.augment) == (
        "d",
        True,
        (4, 5),
        100,
        10,
        False,
    )
    assert (cfg.model, cfg.channels, cfg.hidden, cfg.activation, cfg.label_smoothing) == (
        "mnist-mlp",
        (4, 8, 16),
        7,
        "relu",
        0.1,
    )
    assert (cfg.threads, cfg.amp, cfg.batch_size, cfg.channels_last) == (1, False, None, True)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epoch": 1}, "did you mean 'epochs'"),
        ({"hidden": 0}, "--hidden must be a whole number >= 1"),
        ({"channels": (8, 0, 32)}, "--channels must be three widths >= 1"),
        ({"digits": (3, 3)}, "--digits takes two different digits"),
        ({"model": "resnet"}, "--model must be one of mnist-cnn"),
        ({"loss": "post"}, "give --digits A B"),
        ({"val_size": -1}, "--val-size must be a whole number >= 0"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(tmp_path, overrides, message):
    with pytest.raises(UsageError, match=message):
        torchlab.train("mnist", out=tmp_path / "run", device="cpu", **overrides)
    assert not (tmp_path / "run").exists()


def test_channels_last_changes_nothing_for_the_dense_models(tmp_path):
    """The default recipe sets channels-last; switching to mnist-mlp must train exactly as without it."""
    root = write_mnist(tmp_path / "mnist", n_train=200, n_test=20)
    weights = []
    for flag in (True, False):
        out = tmp_path / f"run-{flag}"
        train_mnist(
            data_dir=str(root), model="mnist-mlp", val_size=0, epochs=1, batch_size=32, out=out, channels_last=flag
        )
        weights.append(torchlab.load(out / "last.pt")[0].state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_train_then_evaluate_and_predict_from_the_cli(tmp_path, capsys):
    root = write_mnist(tmp_path / "mnist", n_train=1000, n_test=200, layout="torchvision", gz=False)
    out = tmp_path / "run"
    result = torchlab.train("mnist", data_dir=str(root), epochs=3, val_size=100, out=out, device="cpu", progress=False)
    summary = result.summary
    assert summary["model"] == "mnist-cnn" and summary["train_samples"] == 900
    assert summary["test_accuracy"] >= 0.95 and result.metrics["test_accuracy"] == summary["test_accuracy"]
    assert list(summary)[:7] == ["task", "model", "recipe", "device", "train_samples", "epochs", "fit_seconds"]
    for name in ("curves", "confusion", "misclassified", "filters", "feature_maps_0", "feature_maps_1"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000, name
    assert sorted(p.name for p in result.figures) == sorted(p.name for p in (out / "figures").glob("*.png"))

    model, meta = torchlab.load(out / "best.pt")
    assert meta["normalization"]["std"] > 0 and meta["classes"] == [str(d) for d in range(10)]
    assert meta["metrics"]["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-4)
    assert meta["config"]["channels"] == [8, 16, 32] and meta["model"]["kwargs"] == {
        "classes": 10,
        "channels": [8, 16, 32],
    }

    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--data-dir", str(root), "--device", "cpu"]) == 0
    shown = capsys.readouterr().out
    accuracy = float(next(line for line in shown.splitlines() if line.startswith("accuracy:")).split()[1])
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=1e-4)

    # a dark-on-light drawing of "3" (a bar at row 8..9 in the synthetic set), bigger than 28x28
    images, labels = synthetic_digits(10, seed=5)
    big = np.kron(255 - images[3], np.ones((4, 4), dtype=np.uint8))
    Image.fromarray(big).save(tmp_path / "three.png")
    assert (
        main(
            [
                "predict",
                str(out / "best.pt"),
                str(tmp_path / "three.png"),
                "--index",
                "7",
                "--data-dir",
                str(root),
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "pred"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"test\[7\]: digit 7 \(probability [01]\.\d{3}\) \(true 7\)", lines[0]), lines[0]
    assert re.fullmatch(r"  probabilities: " + " ".join(rf"{d}:[01]\.\d{{3}}" for d in range(10)), lines[1]), lines[1]
    assert re.fullmatch(re.escape(str(tmp_path / "three.png")) + r": digit \d \(probability [01]\.\d{3}\)", lines[2])
    rows = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert [row["input"] for row in rows] == ["test[7]", str(tmp_path / "three.png")]
    assert rows[0]["true"] == "7" and rows[1]["true"] is None
    assert abs(sum(rows[1]["probabilities"].values()) - 1) < 1e-2

    # CSV through the csv module: a comma in the file name is quoted, not a column too many
    odd = tmp_path / "my,digit.png"
    odd.write_bytes((tmp_path / "three.png").read_bytes())
    records = torchlab.predict(
        out / "best.pt", [odd], index=[7], data_dir=str(root), device="cpu", out=str(tmp_path / "csv"), format="csv"
    )
    with open(tmp_path / "csv" / "predictions.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["input", "prediction", "probability", "true"] + [f"probabilities_{d}" for d in range(10)]
    assert [len(row) for row in table] == [14, 14, 14]
    assert table[1][:4] == ["test[7]", "7", f"{records[0]['probability']:.4f}", "7"]
    assert table[2][0] == str(odd) and table[2][1] == records[1]["prediction"] and table[2][3] == ""

    with pytest.raises(UsageError, match=r"--index must be in 0\.\.199"):
        torchlab.predict(out / "best.pt", index=[5000], data_dir=str(root), batch_size=64, device="cpu")


def test_binary_post_recipe_and_errors(tmp_path):
    root = write_mnist(tmp_path / "mnist", n_train=400, n_test=100)
    summary = train_mnist("post", data_dir=str(root), epochs=30, out=tmp_path / "post", threads=1)
    assert summary["model"] == "mnist-linear" and summary["train_samples"] == 80  # digits 4 and 5 of 400
    assert summary["test_accuracy"] > 0.9
    _, meta = torchlab.load(tmp_path / "post" / "best.pt")
    assert meta["digits"] == [4, 5] and meta["classes"] == ["4", "5"]
    assert torchlab.evaluate(tmp_path / "post" / "best.pt", data_dir=str(root), device="cpu")["samples"] == 20

    with pytest.raises(UsageError, match="--hidden must be a whole number >= 1"):
        train_mnist(data_dir=str(root), model="mnist-mlp", hidden=0, out=tmp_path / "x")
    with pytest.raises(DataError, match="not found"):
        train_mnist(data_dir=str(tmp_path / "nowhere"), out=tmp_path / "y")
    with pytest.raises(UsageError, match="--val-size 400 leaves no training images"):
        train_mnist(data_dir=str(root), val_size=400, out=tmp_path / "z")
    assert not any((tmp_path / name).exists() for name in "xyz")  # nothing written


def test_image_preprocessing_centers_like_mnist(tmp_path):
    from torchlab.data.mnist_image import image_to_mnist

    canvas = np.full((300, 200), 255, dtype=np.uint8)  # black ink on white, off-center, not square
    canvas[20:120, 20:50] = 0
    Image.fromarray(canvas).save(tmp_path / "one.png")
    x = image_to_mnist(tmp_path / "one.png")
    assert x.shape == (28, 28) and x.max() == pytest.approx(1.0) and x[0].max() == 0  # bright ink, empty border
    rows, cols = np.nonzero(x > 0.5)
    assert rows.max() - rows.min() + 1 == 20  # the longer side fills MNIST's 20-pixel box
    mass = x / x.sum()
    assert abs((mass.sum(1) * np.arange(28)).sum() - 13.5) < 1 and abs((mass.sum(0) * np.arange(28)).sum() - 13.5) < 1


# --------------------------------------------------------------- real MNIST
@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="real MNIST is not in ../shared/data/mnist")
def test_real_mnist_cnn_reaches_98_percent(tmp_path):
    started = time.perf_counter()
    summary = train_mnist(
        data_dir=str(SHARED_MNIST), limit=20000, val_size=1000, epochs=2, out=tmp_path / "real", threads=1
    )
    assert summary["train_samples"] == 19000
    assert summary["test_accuracy"] >= 0.98, summary
    assert time.perf_counter() - started < 120


def test_default_validation_is_a_share_so_any_limit_works(tmp_path):
    """--limit 3000 used to fail: the fixed 5,000 validation images were more than the data."""
    root = write_mnist(tmp_path / "data", n_train=600, n_test=100)
    summary = train_mnist(data_dir=str(root), limit=300, epochs=1, out=tmp_path / "run")
    assert summary["train_samples"] == 275  # 300 - round(300 / 12) held out for validation
    assert 0.0 <= summary["val_accuracy"] <= 1.0
