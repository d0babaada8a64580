"""torchlab.compare: the settings that differ, each run's best and final metrics, and one figure of the curves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from torch import nn

import torchlab
from torchlab.engine.checkpoint import make_checkpoint, save_checkpoint
from torchlab.engine.checkpoint_writer import write_history_csv
from torchlab.errors import CheckpointError, UsageError
from torchlab.reporting import figures
from torchlab.reporting.compare import MISSING, compare, is_metric_name

DIGITS = {"epochs": 5, "lr": 0.01, "batch_size": 64, "label_smoothing": 0.1, "hidden": 32}
HISTORY_A = [
    {
        "epoch": e,
        "train_loss": 2.0 / e,
        "train_accuracy": 0.5 + e / 20,
        "val_loss": v,
        "val_accuracy": 0.6 + e / 50,
        "lr": 0.01,
        "seconds": 0.1,
    }
    for e, v in zip(range(1, 6), (1.0, 0.7, 0.5, 0.55, 0.6))
]
HISTORY_B = [
    {
        "epoch": e,
        "train_loss": 1.5 / e,
        "train_accuracy": 0.6 + e / 20,
        "val_loss": 0.8 / e,
        "val_accuracy": a,
        "lr": 0.1,
        "seconds": 0.1,
    }
    for e, a in zip(range(1, 5), (0.8, 0.9, 0.85, 0.905))
]  # epoch 4: better by less than a min_delta of 0.01


def write_run(folder, history, config, *, task="digit-mlp", recipe="default", seed=0, best=None, metrics=None):
    """A run folder as the Trainer leaves it: last.pt and best.pt (metadata, history, best epoch), history.csv."""
    extra = {} if best is None else {"best": best}
    checkpoint = make_checkpoint(
        task=task,
        model_name=task,
        model=nn.Linear(2, 2),
        model_kwargs={},
        recipe=recipe,
        seed=seed,
        epoch=len(history),
        epochs=config["epochs"],
        history=history,
        metrics={**history[-1], **(metrics or {})},
        config=config,
        **extra,
    )
    save_checkpoint(checkpoint, folder / "last.pt", folder / "best.pt")
    write_history_csv(history, folder / "history.csv")
    return folder


@pytest.fixture
def two_runs(tmp_path):
    a = write_run(
        tmp_path / "a",
        HISTORY_A,
        DIGITS,
        metrics={"test_accuracy": 0.9, "rmse_left_eye_center_x": 1.0},
        best={"monitor": "val_loss", "mode": "min", "value": 0.5, "epoch": 3},
    )
    b = write_run(
        tmp_path / "b",
        HISTORY_B,
        {**DIGITS, "epochs": 4, "lr": 0.1},
        recipe="seed",
        seed=1,
        best={"monitor": "val_accuracy", "mode": "max", "value": 0.9, "epoch": 2},
    )
    return a, b


def table_rows(result):
    """The table as {row label: one cell per run}."""
    return {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in result.table())}


def test_compare_gives_the_differing_settings_and_each_runs_best_and_final_metrics(two_runs, tmp_path):
    a, b = two_runs
    result = compare([a, b], out=tmp_path / "figs" / "cmp.png")
    assert result.differences == {"epochs": [5, 4], "lr": [0.01, 0.1], "seed": [0, 1]}  # batch_size etc. agree
    run_a, run_b = result.runs
    assert (run_a.task, run_a.recipe, run_b.recipe) == ("digit-mlp", "default", "seed")
    assert (run_a.monitor, run_a.mode, run_a.best_epoch) == ("val_loss", "min", 3)
    assert run_a.best == {
        "train_loss": 2.0 / 3,
        "train_accuracy": 0.5 + 3 / 20,
        "val_loss": 0.5,
        "val_accuracy": 0.6 + 3 / 50,
    }
    assert run_a.final == {"train_loss": 0.4, "train_accuracy": 0.75, "val_loss": 0.6, "val_accuracy": 0.7}
    assert run_a.evaluated == {"test_accuracy": 0.9}  # measured after training; not a per-keypoint breakdown
    assert (run_b.monitor, run_b.mode, run_b.best_epoch, run_b.best["val_accuracy"]) == ("val_accuracy", "max", 2, 0.9)
    assert run_b.final["val_accuracy"] == 0.905 and run_b.evaluated == {}  # the stored best epoch (2) stands
    assert result.figure == tmp_path / "figs" / "cmp.png"
    with Image.open(result.figure) as image:
        assert image.format == "PNG" and image.width > 300


def test_torchlab_compare_is_the_public_name():
    assert torchlab.compare is compare
    assert "compare" in dir(torchlab)


def test_the_figure_draws_one_color_per_run_and_stars_each_best_epoch(two_runs, tmp_path, monkeypatch):
    drawn = []
    save = figures.save_figure

    def keep(fig, path, dpi=80):
        drawn.append(
            [
                (
                    ax.get_title(),
                    [
                        (
                            line.get_color(),
                            line.get_marker(),
                            line.get_linestyle(),
                            list(line.get_xdata()),
                            list(line.get_ydata()),
                        )
                        for line in ax.get_lines()
                    ],
                )
                for ax in fig.axes
            ]
        )
        return save(fig, path, dpi)

    monkeypatch.setattr(figures, "save_figure", keep)
    compare(list(two_runs), out=tmp_path / "cmp.png")
    (panels,) = drawn
    assert [title for title, _ in panels] == ["loss", "accuracy"]
    loss, accuracy = (lines for _, lines in panels)
    stars = [(color, x, y) for color, marker, _, x, y in loss + accuracy if marker == "*"]
    assert len(stars) == 2
    (color_a, *star_a), (color_b, *star_b) = stars
    assert star_a == [[3], [0.5]] and star_b == [[2], [0.9]]  # run a's best val_loss (loss), run b's val_accuracy
    assert color_a != color_b
    curves = {(color, style): y for color, marker, style, x, y in loss if marker != "*" and len(x) > 2}
    assert curves[color_a, "--"] == [row["val_loss"] for row in HISTORY_A]  # validation dashed, in the run's color
    assert curves[color_a, "-"] == [row["train_loss"] for row in HISTORY_A]
    assert curves[color_b, "--"] == [row["val_loss"] for row in HISTORY_B]
    marks = {(color, x[0]) for color, _, style, x, _ in loss + accuracy if style == ":"}
    assert marks == {(color_a, 3), (color_b, 2)}  # the best epoch's dotted line, in both panels


def test_runs_of_different_tasks_show_a_dash_for_fields_one_of_them_lacks(two_runs, tmp_path):
    history = [{"epoch": e, "train_loss": 5.0 / e, "val_loss": 4.0 / e, "val_rmse": 3.0 / e} for e in (1, 2)]
    faces = write_run(
        tmp_path / "faces",
        history,
        {"epochs": 2, "lr": 0.01, "batch_size": 64, "width": 8},
        task="keypoint-cnn",
        best={"monitor": "val_rmse", "mode": "min", "value": 1.5, "epoch": 2},
        metrics={"val_rmse_px": 2.5, "baseline_rmse_px": 7.0, "rmse_left_eye_center_x": 1.0},
    )
    result = compare([two_runs[0], faces], out=tmp_path / "cmp.png")
    assert result.differences == {
        "epochs": [5, 2],
        "label_smoothing": [0.1, MISSING],
        "hidden": [32, MISSING],
        "width": [MISSING, 8],
    }
    assert result.runs[1].evaluated == {"val_rmse_px": 2.5, "baseline_rmse_px": 7.0}
    rows = table_rows(result)
    assert list(rows) == [
        "run",
        "task",
        "recipe",
        "epochs",
        "label_smoothing",
        "hidden",
        "width",
        "epochs run",
        "best",
        "final train_loss",
        "final val_loss",
        "final train_accuracy",
        "final val_accuracy",
        "final val_rmse",
        "test_accuracy",
        "val_rmse_px",
        "baseline_rmse_px",
    ]  # losses first
    assert rows["task"] == ["digit-mlp", "keypoint-cnn"]
    assert rows["width"] == ["—", "8"] and rows["label_smoothing"] == ["0.1", "—"]
    assert rows["best"] == ["val_loss 0.5 (epoch 3)", "val_rmse 1.5 (epoch 2)"]
    assert rows["final val_rmse"] == ["—", "1.5"] and rows["final val_accuracy"] == ["0.7", "—"]
    assert rows["test_accuracy"] == ["0.9", "—"] and rows["val_rmse_px"] == ["—", "2.5"]


def test_runs_with_the_same_settings_say_so_and_none_reads_as_the_flag_writes_it(two_runs, tmp_path):
    twin = write_run(tmp_path / "twin", HISTORY_B, DIGITS)
    same = compare([two_runs[0], twin], out=tmp_path / "cmp.png")
    assert same.differences == {} and table_rows(same)["settings"] == ["same", "same"]
    full_batch = write_run(tmp_path / "full", HISTORY_B, {**DIGITS, "batch_size": None})
    assert table_rows(compare([two_runs[0], full_batch], out=tmp_path / "cmp.png"))["batch_size"] == ["64", "none"]


def test_a_history_only_run_and_a_run_without_a_stored_best(tmp_path):
    write_history_csv(HISTORY_A, tmp_path / "csv" / "history.csv")
    plain = make_checkpoint(
        task="patch-linear",
        model_name="patch-linear",
        model=nn.Linear(3, 1),
        model_kwargs={},
        recipe="seed",
        epoch=3,
        history=[{"epoch": e, "train_loss": loss} for e, loss in ((1, 3.0), (2, 1.0), (3, 2.0))],
        config={"epochs": 3, "lr": 0.5},
    )
    save_checkpoint(plain, tmp_path / "plain" / "last.pt", tmp_path / "plain" / "best.pt")
    csv_run, plain_run = compare([tmp_path / "csv", tmp_path / "plain" / "best.pt"], out=tmp_path / "cmp.png").runs
    assert (csv_run.task, csv_run.monitor, csv_run.best_epoch, csv_run.settings) == (MISSING, "val_loss", 3, {})
    assert csv_run.final["val_loss"] == pytest.approx(0.6)  # read back from the CSV text
    assert (plain_run.task, plain_run.monitor, plain_run.best_epoch) == ("patch-linear", "train_loss", 2)


def broken(folder):
    folder.mkdir()
    (folder / "best.pt").write_bytes(b"not a checkpoint")


def without_history(folder):
    checkpoint = make_checkpoint(
        task="digit-mlp", model_name="digit-mlp", model=nn.Linear(2, 2), model_kwargs={}, history=[], config=DIGITS
    )
    save_checkpoint(checkpoint, folder / "last.pt")


@pytest.mark.parametrize(
    "make, error, says",
    [
        (lambda folder: None, UsageError, "there is no run folder"),
        (
            lambda folder: folder.mkdir(),
            UsageError,
            "is not a run folder (it holds no last.pt, best.pt or history.csv)",
        ),
        (without_history, UsageError, "holds no training history"),
        (broken, CheckpointError, "is not a readable checkpoint"),
    ],
)
def test_a_missing_run_or_one_without_history_is_refused_and_no_figure_is_written(
    two_runs, tmp_path, make, error, says
):
    make(tmp_path / "bad")
    out = tmp_path / "out"
    with pytest.raises(error, match=re.escape(says)) as caught:
        compare([two_runs[0], tmp_path / "bad"], out=out / "cmp.png")
    assert "\n" not in str(caught.value)
    assert not out.exists()


def test_fewer_than_two_runs_or_one_run_twice_is_refused(two_runs, tmp_path):
    a, _ = two_runs
    for runs in ([a], a):
        with pytest.raises(UsageError, match="at least two runs, got 1"):
            compare(runs, out=tmp_path / "cmp.png")
    with pytest.raises(UsageError, match="are the same run"):
        compare([a, a / "best.pt"], out=tmp_path / "cmp.png")
    assert not (tmp_path / "cmp.png").exists()


def test_where_the_figure_goes(two_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert compare(list(two_runs)).figure == Path("compare.png") and (tmp_path / "compare.png").is_file()
    (tmp_path / "figs").mkdir()
    assert compare(list(two_runs), out="figs").figure == Path("figs", "compare.png")
    assert (tmp_path / "figs" / "compare.png").is_file()
    assert compare(list(two_runs), out="new/").figure == Path("new", "compare.png")  # a folder to make
    assert (tmp_path / "new" / "compare.png").is_file()
    with pytest.raises(UsageError, match=r"--out must be a \.png file or a folder, got cmp\.jpg"):
        compare(list(two_runs), out="cmp.jpg")
    assert not (tmp_path / "cmp.jpg").exists()


def test_compare_reads_what_the_trainer_writes(tmp_path):
    trained = [
        torchlab.train("digit-mlp", out=tmp_path / name, device="cpu", progress=False, figures=False, epochs=2, lr=lr)
        for name, lr in (("slow", 0.01), ("fast", 0.05))
    ]
    result = compare([tmp_path / "slow", tmp_path / "fast"], out=tmp_path / "cmp.png")
    assert result.differences == {"lr": [0.01, 0.05]}
    for run, train in zip(result.runs, trained):
        assert (run.task, run.recipe, run.monitor, run.epochs) == ("digits", "default", "val_loss", 2)
        assert [row["val_loss"] for row in run.history] == [row["val_loss"] for row in train.history]
        assert run.best_epoch == min(train.history, key=lambda row: row["val_loss"])["epoch"]
        assert run.final["val_accuracy"] == train.history[-1]["val_accuracy"]
        assert run.evaluated["test_accuracy"] == pytest.approx(train.metrics["test_accuracy"])


@pytest.mark.parametrize(
    "name, metric",
    [
        ("train_loss", True),
        ("val_accuracy", True),
        ("test_accuracy", True),
        ("val_rmse_px", True),
        ("residual_rms", True),
        ("lstsq_mse", True),
        ("hand_set_accuracy", True),
        ("train_samples", False),
        ("fit_seconds", False),
        ("best_epoch", False),
        ("lr", False),
        ("epochs", False),
        ("val_rows", False),
        ("rmse_left_eye_center_x", False),
    ],
)
def test_what_counts_as_a_metric(name, metric):
    assert is_metric_name(name) is metric
