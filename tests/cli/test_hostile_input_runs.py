"""Issue 11: runs that cannot be silently wrong or lost. Non-finite inputs and weights, size flags
beyond what the machine can do, metadata that does not fit its task, non-regular files, messages
that say what is true, and flags that were accepted and ignored: each ends in one line with exit
status 2 (or a CheckpointError), or does what the flag says."""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import torchlab
from torchlab import Trainer
from torchlab.cli.main import main
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import load_state_into, make_checkpoint, save_checkpoint
from torchlab.errors import CheckpointError, DataError, TrainingError, UsageError
from torchlab.models import build_model
from torchlab.reporting.messages import shorten
from torchlab.runtime.guards import Note


def one_line_error(capsys, status: int) -> str:
    captured = capsys.readouterr()
    assert status == 2, captured
    err = captured.err.strip()
    assert err.startswith("torchlab") and "\n" not in err and "Traceback" not in err, captured.err
    return err


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging when the block runs longer than `seconds`."""

    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def quiet_train(task: str, out, **overrides):
    return torchlab.train(task, out=out, device="cpu", progress=False, figures=False, **overrides)


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """One small trained checkpoint per task without data files: {task: best.pt}."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "digit-mlp": quiet_train("digit-mlp", root / "digits", epochs=1).best_checkpoint,
        "ring-mlp": quiet_train("ring-mlp", root / "ring", epochs=3, points=200).best_checkpoint,
        "patch-linear": quiet_train("patch-linear", root / "patch", epochs=3, ramp=True, size=8).best_checkpoint,
    }


def retagged(runs, tmp_path, source: str, task: str, keep_config: bool) -> str:
    """A copy of `source`'s checkpoint whose 'task' field names another task."""
    checkpoint = torch.load(runs[source], weights_only=True)
    checkpoint["task"] = task
    if not keep_config:
        del checkpoint["config"]
    path = tmp_path / f"{source}-as-{task}.pt"
    save_checkpoint(checkpoint, path)
    return str(path)


# ----------------------------------------------------- 6: non-finite inputs and weights
@pytest.mark.parametrize(
    "argv, flag",
    [
        (["ring", "--point", "nan,1"], "--point"),
        (["ring", "--point=1,inf"], "--point"),
        (["ring", "--box", "nan"], "--box"),
        (["landscape", "--line", "nan", "1"], "--line"),
        (["landscape", "--line", "1", "inf"], "--line"),
    ],
)
def test_non_finite_values_for_the_small_commands(capsys, tmp_path, argv, flag):
    err = one_line_error(capsys, main([*argv, "--no-figures", "--out", str(tmp_path)]))
    assert flag in err and ("finite" in err or "(0," in err)


@pytest.mark.parametrize(
    "task, text",
    [
        ("ring-mlp", "nan,1"),
        ("ring-mlp", "1,inf"),
        ("patch-linear", "nan,3"),
        ("patch-linear", "3,-inf"),
        ("patch-linear", "1e300,3"),
    ],
)
def test_non_finite_points_for_predict(runs, capsys, task, text):
    err = one_line_error(capsys, main(["predict", str(runs[task]), text, "--device", "cpu"]))
    assert "must be finite numbers" in err and text in err


def test_checkpoint_with_nan_weights_is_refused_at_load(runs, tmp_path):
    checkpoint = torch.load(runs["digit-mlp"], weights_only=True)
    checkpoint["state_dict"]["output.bias"][3] = float("nan")
    save_checkpoint(checkpoint, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"non-finite weights \(1 NaN or infinite values in output\.bias\)"):
        torchlab.load(tmp_path / "nan.pt")


# ----------------------------------------------------- 8: bounded work, progress
@pytest.mark.parametrize(
    "argv, says",
    [
        (["descent", "--steps", "100000000"], "--steps must be <= 5,000"),
        (["descent", "--steps", "3000", "--eta", *["0.1"] * 10], "--steps must be <= 2,000"),
        (["descent", "--eta", *["0.1"] * 11], "--eta values must be <= 10"),
        (["landscape", "--hidden", "100000", "--weights", "random"], "--hidden must be <= 256"),
        (["landscape", "--compare", "3", "100000"], "--compare size must be <= 256"),
        (["landscape", "--compare", "1", "2", "3", "4", "5", "6", "7"], "--compare sizes must be <= 6"),
    ],
)
def test_size_flags_of_the_small_commands_are_bounded(capsys, tmp_path, argv, says):
    with deadline(30):
        err = one_line_error(capsys, main([*argv, "--no-figures", "--out", str(tmp_path)]))
    assert says in err


@pytest.mark.parametrize(
    "task, flags, says",
    [
        ("ring-mlp", {"points": 10**12}, "--points 1,000,000,000,000 with --hidden 16 would need about"),
        ("patch-linear", {"ramp": True, "size": 10**7}, "a 10000000x10000000 patch would need about"),
        ("digit-mlp", {"hidden": 10**12}, "--hidden 1000000000000 would need about"),
    ],
)
def test_sizes_a_task_cannot_hold_are_refused_before_anything_is_written(tmp_path, task, flags, says):
    with deadline(30), pytest.raises(UsageError, match="of memory, over the budget of .* free on cpu") as info:
        quiet_train(task, tmp_path / "run", **flags)
    assert says in str(info.value)
    assert not (tmp_path / "run").exists()


def test_landscape_counts_regions_of_more_than_62_units_exactly():
    """Codes 2**i overflowed int64 from 63 units on and merged different on/off patterns."""
    from torchlab.lessons.landscape import activation_regions

    net = build_model("landscape-net", hidden=100, weights="random", seed=0)
    axis = torch.linspace(-2, 2, 100)
    with torch.no_grad():
        pattern = (net.hidden(torch.cartesian_prod(axis, axis)) > 0).numpy()
    assert activation_regions(net, 2.0, resolution=100) == len(np.unique(pattern, axis=0)) == 1378


def test_long_descent_shows_progress(capsys, tmp_path, monkeypatch):
    import torchlab.cli.lessons as small
    import torchlab.reporting.progress
    from torchlab.lessons.descent import BOWL, gradient_path

    counted = []
    gradient_path(BOWL, 0.1, 2500, counted.append)
    assert counted == [1000, 1000, 500]
    monkeypatch.setattr(small, "PROGRESS_FROM", 100)
    monkeypatch.setattr(torchlab.reporting.progress, "mode", lambda setting, stream: "bars")  # as on a terminal
    assert main(["descent", "--steps", "60", "--eta", "0.1", "--no-figures", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "gradient steps" in captured.err and "/120 " in captured.err
    assert "descent eta=0.1: after 60 steps" in captured.out


# ----------------------------------------------------- 9: tracebacks
def test_huge_radii_are_one_line(capsys, tmp_path):
    err = one_line_error(capsys, main(["ring", "--a", "1e300", "--b", "1e301", "--no-figures", "--out", str(tmp_path)]))
    assert "b <= 1e+06" in err


def test_checkpoint_whose_task_field_names_another_task(runs, tmp_path, capsys):
    path = retagged(runs, tmp_path, "digit-mlp", "ring-mlp", keep_config=True)
    with pytest.raises(CheckpointError, match="config field 'label_smoothing' is not a field of ring-mlp's config"):
        torchlab.evaluate(path, device="cpu")
    path = retagged(runs, tmp_path, "digit-mlp", "ring-mlp", keep_config=False)
    wrong_model = (
        f"^{path} says task ring-mlp but its model 'digit-mlp' does not take that task's inputs "
        r"\(a ring-mlp checkpoint holds ring-mlp\); its 'task' field does not fit its model: retrain$"
    )
    for call in (
        lambda: torchlab.evaluate(path, device="cpu"),
        lambda: torchlab.predict(path, ["1,1"], device="cpu"),
        lambda: torchlab.open_checkpoint(path, device="cpu"),
    ):
        with pytest.raises(CheckpointError, match=wrong_model):
            call()  # refused on opening, before the task builds any input
    err = one_line_error(capsys, main(["predict", path, "1,1", "--device", "cpu"]))
    assert "model 'digit-mlp' does not take that task's inputs" in err
    path = retagged(runs, tmp_path, "digit-mlp", "patch-linear", keep_config=False)
    with pytest.raises(
        CheckpointError,
        match="model 'digit-mlp' does not take that task's inputs "
        r"\(a patch-linear checkpoint holds patch-linear\)",
    ):
        torchlab.evaluate(path, device="cpu")
    checkpoint = torch.load(runs["ring-mlp"], weights_only=True)  # the right model, a field missing
    del checkpoint["data"]
    save_checkpoint(checkpoint, tmp_path / "no-data.pt")
    with pytest.raises(CheckpointError, match="no metadata field 'data', which task ring needs"):
        torchlab.evaluate(tmp_path / "no-data.pt", device="cpu")


def test_every_model_of_a_task_opens_as_that_task(runs):
    """The typed check lets through what each task's checkpoints hold (mnist: any of its five models)."""
    for task in torchlab.task_names():
        models = torchlab.tasks.get_task(task).models
        assert models and all(name in torchlab.model_names() for name in models), task
    for task, path in runs.items():  # trained by their old names, aliases of ring, digits, ...
        assert torchlab.open_checkpoint(path, device="cpu").task == torchlab.tasks.get_task(task)


def test_a_missing_nested_field_is_named_with_its_path(runs, tmp_path):
    checkpoint = torch.load(runs["patch-linear"], weights_only=True)
    del checkpoint["normalization"]["coord_divisor"]
    save_checkpoint(checkpoint, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="no metadata field 'normalization.coord_divisor'"):
        torchlab.predict(tmp_path / "p.pt", ["3,3"], device="cpu")


# ----------------------------------------------------- 10: non-regular files
def test_fifo_as_checkpoint_or_image_is_refused_at_once(runs, tmp_path, capsys):
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    with deadline(20):
        err = one_line_error(capsys, main(["evaluate", str(fifo), "--device", "cpu"]))
        assert "not a regular file" in err
        err = one_line_error(capsys, main(["predict", str(runs["digit-mlp"]), str(fifo), "--device", "cpu"]))
        assert "not a regular file" in err and str(fifo) in err


# ----------------------------------------------------- 11: messages that say what is true
def blob_trainer(tmp_path, lr=0.05, config=None, epochs=2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 2, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=lr),
        epochs=epochs,
        checkpoint_dir=tmp_path,
        checkpoint_meta={"config": config or {"lr": lr}},
        progress=False,
    )
    return trainer, x, y


def test_nan_loss_in_the_first_epoch_cites_no_missing_checkpoint(tmp_path, capsys):
    trainer, x, y = blob_trainer(tmp_path, lr=1e30)
    with pytest.raises(TrainingError) as info:
        trainer.fit(TensorBatcher((x, y), 16))
    assert info.value.fields == ("lr", "grad_clip") and info.value.checkpoint is None
    assert "(lr)" in str(info.value) and "last.pt" not in str(info.value)
    assert not (tmp_path / "last.pt").exists()
    # the same advice on the command line names the flags
    err = one_line_error(
        capsys,
        main(
            [
                "train",
                "ring-mlp",
                "--lr",
                "1e30",
                "--epochs",
                "5",
                "--points",
                "200",
                "--out",
                str(tmp_path / "ring"),
                "--device",
                "cpu",
                "--no-figures",
                "--no-progress",
            ]
        ),
    )
    assert err == (
        "torchlab train: error: train_loss became nan in epoch 2 (lr 1e+30); try a lower learning rate "
        "(--lr) or gradient clipping (--grad-clip)"
    )


def test_nan_loss_from_a_non_finite_field_does_not_blame_the_learning_rate():
    """torchlab.train names the setting (tests/test_api.py); the CLI writes it as its flag."""
    from torchlab.cli.main import in_flags
    from torchlab.errors import FieldName, NonFiniteLoss

    error = NonFiniteLoss("train_loss", math.nan, 1, 0.05, (FieldName("flip_sum"), " is nan: give it a finite value"))
    assert in_flags(error) == "train_loss became nan in epoch 1 (lr 0.05); --flip-sum is nan: give it a finite value"
    assert "--lr" not in in_flags(error) and str(error).endswith("; flip_sum is nan: give it a finite value")


def test_nan_validation_loss_blames_the_validation_data(tmp_path):
    trainer, x, y = blob_trainer(tmp_path)
    x_val = x[:20].clone()
    x_val[3, 1] = math.nan
    with pytest.raises(TrainingError, match="validation data hold values") as info:
        trainer.fit(TensorBatcher((x, y), 16), TensorBatcher((x_val, y[:20]), 16))
    assert "learning rate" not in str(info.value)


def test_evaluate_on_missing_mnist_files_does_not_offer_download(tmp_path, capsys):
    from torchlab.data.mnist import load_mnist

    model = build_model("mnist-linear")
    save_checkpoint(
        make_checkpoint(
            task="mnist",
            model_name="mnist-linear",
            model=model,
            model_kwargs={},
            normalization={"mean": 0.0, "std": 1.0},
            classes=[str(d) for d in range(10)],
        ),
        tmp_path / "m.pt",
    )
    for argv in (["evaluate", str(tmp_path / "m.pt")], ["predict", str(tmp_path / "m.pt"), "--index", "0"]):
        err = one_line_error(capsys, main([*argv, "--data-dir", str(tmp_path / "none"), "--device", "cpu"]))
        assert "not found" in err and "--data-dir" in err and "--download" not in err
    with pytest.raises(DataError, match="add --download"):  # train has --download, so it still says so
        load_mnist(tmp_path / "none")


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_device_named_as_given(capsys):
    err = one_line_error(capsys, main(["evaluate", "any.pt", "--device", "cuda:7"]))
    assert "'cuda:7'" in err


def test_random_bytes_are_not_called_code_but_a_crafted_pickle_is(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    (tmp_path / "random.pt").write_bytes(bytes(np.random.default_rng(0).integers(128, 256, 300, dtype=np.uint8)))
    with pytest.raises(CheckpointError) as info:
        torchlab.load(tmp_path / "random.pt")
    assert "not a readable checkpoint" in str(info.value) and "run code" not in str(info.value)
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match=r"refers to the Python object (posix|os|nt)\.system.*could run code"):
        torchlab.load(tmp_path / "evil.pt")


def digit_png(path, blank: bool = False):
    pixels = np.full((40, 40), 255, np.uint8)
    if not blank:
        pixels[6:34, 18:23] = 0  # a "1"
    Image.fromarray(pixels).save(path)
    return str(path)


def test_blank_image_in_a_batch_is_named(runs, tmp_path, capsys):
    images = [
        digit_png(tmp_path / "a.png"),
        digit_png(tmp_path / "blank.png", blank=True),
        digit_png(tmp_path / "c.png"),
    ]
    err = one_line_error(capsys, main(["predict", str(runs["digit-mlp"]), *images, "--device", "cpu"]))
    assert "blank.png" in err and "blank" in err.split("blank.png", 1)[1]


def test_a_full_disk_is_called_a_full_disk(runs, tmp_path, capsys, monkeypatch):
    import torchlab.api

    target = tmp_path / "preds" / "predictions.json"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(torchlab.api, "write_records", full)
    err = one_line_error(
        capsys,
        main(["predict", str(runs["digit-mlp"]), "--index", "0", "--out", str(tmp_path / "preds"), "--device", "cpu"]),
    )
    assert "the disk is full" in err and str(target) in err and "permissions" not in err


def test_long_details_are_cut_at_a_word_and_keep_the_advice():
    text = "size mismatch for the weight of layer seven: " * 10
    cut = shorten(text, 120)
    assert len(cut) <= 120 and cut.endswith("...") and text.startswith(cut[:-3]) and text[len(cut) - 3] == " "
    assert shorten("x" * 300, 100) == "x" * 97 + "..."  # one long token: cut inside it
    model = nn.ModuleDict({f"layer{i}": nn.Linear(2, 1) for i in range(12)})
    wrong = {f"{name}_{i}.weight": torch.zeros(1, 2) for i, name in enumerate(model)}  # keys that do not exist
    with pytest.raises(CheckpointError) as info:
        load_state_into(model, wrong, source="run.pt")
    message = str(info.value)
    detail = message.split(": ", 1)[1].split("; its weights", 1)[0]
    assert detail.endswith("...") and len(detail) <= 200 and detail[:-3] in message
    assert message.endswith("retrain, or use the checkpoint unchanged")


# ----------------------------------------------------- 12: flags accepted and ignored
@pytest.mark.parametrize(
    "task, inputs, index",
    [("digit-mlp", [], [0, 5]), ("ring-mlp", ["1,1", "0.5,0.2"], []), ("patch-linear", ["3,3"], [2])],
)
def test_predict_out_is_a_folder_with_the_predictions_for_every_task(runs, tmp_path, capsys, task, inputs, index):
    out = tmp_path / "preds"
    argv = ["predict", str(runs[task]), *inputs, *[f"--index={i}" for i in index], "--device", "cpu", "--out", str(out)]
    assert main([*argv, "--format", "csv"]) == 0
    assert main(argv) == 0
    expected = torchlab.predict(runs[task], inputs, index=index, device="cpu")
    assert json.loads((out / "predictions.json").read_text()) == json.loads(json.dumps(expected))
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["input"] for row in rows] == [record["input"] for record in expected]


def test_digit_csv_predictions_have_one_column_per_class(runs, tmp_path):
    records = torchlab.predict(runs["digit-mlp"], index=[0], device="cpu", out=str(tmp_path), format="csv")
    header, row = (tmp_path / "predictions.csv").read_text().splitlines()
    assert header.split(",") == ["input", "prediction", "probability", "true"] + [
        f"probabilities_{c}" for c in range(10)
    ]
    assert row.split(",")[1] == str(records[0]["prediction"])


def test_format_without_out_and_out_that_is_a_file(runs, tmp_path, capsys):
    err = one_line_error(capsys, main(["predict", str(runs["digit-mlp"]), "--index", "0", "--format", "csv"]))
    assert "--format csv needs --out" in err
    (tmp_path / "file").write_text("x")
    err = one_line_error(
        capsys, main(["predict", str(runs["digit-mlp"]), "--index", "0", "--out", str(tmp_path / "file")])
    )
    assert "is a file" in err


@pytest.mark.parametrize("task", ["digit-mlp", "ring-mlp", "patch-linear"])
def test_options_a_task_cannot_use_are_usage_errors(runs, capsys, task):
    name = torchlab.tasks.get_task(task).name  # trained by its old name: digits, ring, patch
    err = one_line_error(capsys, main(["evaluate", str(runs[task]), "--data", "/nonexistent.csv", "--device", "cpu"]))
    assert f"--data is not used by {name} evaluate" in err
    err = one_line_error(
        capsys, main(["predict", str(runs[task]), "--index", "0", "--submission", "ids.csv", "--device", "cpu"])
    )
    assert f"--submission is not used by {name} predict" in err


def test_amp_on_the_cpu_gives_a_one_line_note(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "ring-mlp",
                "--amp",
                "--epochs",
                "2",
                "--points",
                "100",
                "--device",
                "cpu",
                "--no-figures",
                "--no-progress",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert notes == [
        "torchlab train: note: --amp does nothing on the CPU: bf16 autocast runs on CUDA only, "
        "so this run trains in float32"
    ]
    with pytest.warns(Note, match="--amp does nothing on the CPU"):
        quiet_train("ring-mlp", tmp_path / "r2", amp=True, epochs=1, points=100)


def test_mnist_predict_refuses_flags_it_cannot_honor(tmp_path, capsys):
    """--submission was accepted and ignored by mnist predict; --box/--detect are for keypoint photos only."""
    from mnist_files import write_mnist

    root = write_mnist(tmp_path / "data", n_train=240, n_test=40)
    torchlab.train(
        "mnist",
        data_dir=str(root),
        epochs=1,
        val_size=0,
        model="mnist-linear",
        out=tmp_path / "run",
        device="cpu",
        figures=False,
        progress=False,
    )
    for flags, word in (
        (["--submission", "ids.csv"], "--submission"),
        (["--box", "1,2,3,4"], "--box "),
        (["--no-detect"], "--detect"),
    ):
        status = main(["predict", str(tmp_path / "run" / "best.pt"), "--index", "0", "--data-dir", str(root), *flags])
        err = capsys.readouterr().err.strip()
        assert status == 2 and word in err and "is not used by mnist predict" in err and "\n" not in err


def test_cli_box_reaches_keypoint_predict(tmp_path, capsys, tiny_keypoint_checkpoint):
    """`torchlab predict KP.pt photo --box X,Y,W,H --box ...`: one record per given face, none detected."""
    import json

    from PIL import Image

    Image.fromarray(np.full((200, 300), 128, dtype=np.uint8)).save(tmp_path / "photo.png")
    status = main(
        [
            "predict",
            str(tiny_keypoint_checkpoint),
            str(tmp_path / "photo.png"),
            "--box",
            "10,20,80,80",
            "--box",
            "150,40,100,100",
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    assert status == 0, capsys.readouterr().err
    records = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [r["found_by"] for r in records] == ["box", "box"] and [r["faces"] for r in records] == [2, 2]
    assert [r["box"]["x"] for r in records] == [10, 150]
    bad = main(["predict", str(tiny_keypoint_checkpoint), str(tmp_path / "photo.png"), "--box", "1,2,3"])
    assert bad == 2 and "X,Y,W,H" in capsys.readouterr().err
