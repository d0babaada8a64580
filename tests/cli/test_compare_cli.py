"""`torchlab compare RUN RUN...`: the table of settings and metrics, the figure's path, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from PIL import Image
from torch import nn

from torchlab.cli.main import main
from torchlab.engine.checkpoint import make_checkpoint, save_checkpoint
from torchlab.engine.checkpoint_writer import write_history_csv

CONFIG = {"epochs": 3, "lr": 0.01, "batch_size": 64, "hidden": 32}


def write_run(folder, lr, val_losses, test_accuracy):
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": v, "val_accuracy": 0.5 + e / 10, "lr": lr, "seconds": 0.1}
        for e, v in enumerate(val_losses, 1)
    ]
    best = min(history, key=lambda row: row["val_loss"])
    checkpoint = make_checkpoint(
        task="digit-mlp",
        model_name="digit-mlp",
        model=nn.Linear(2, 2),
        model_kwargs={},
        recipe="default",
        seed=0,
        epoch=len(history),
        epochs=3,
        history=history,
        metrics={**history[-1], "test_accuracy": test_accuracy},
        best={"monitor": "val_loss", "mode": "min", "value": best["val_loss"], "epoch": best["epoch"]},
        config={**CONFIG, "lr": lr},
    )
    save_checkpoint(checkpoint, folder / "last.pt", folder / "best.pt")
    write_history_csv(history, folder / "history.csv")


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "checkpoints" / "slow", 0.01, (0.9, 0.6, 0.7), 0.91)
    write_run(tmp_path / "checkpoints" / "fast", 0.1, (0.5, 0.4, 0.3), 0.95)
    return tmp_path


def test_compare_prints_the_table_then_the_figure_path(runs, capsys):
    assert main(["compare", "checkpoints/slow", "checkpoints/fast", "--out", "figs/cmp.png"]) == 0
    out = capsys.readouterr().out
    *lines, blank, figure = out.rstrip("\n").splitlines()
    assert blank == "" and figure == "figure: figs/cmp.png"
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in lines)}
    assert list(rows) == [
        "run",
        "task",
        "recipe",
        "lr",
        "epochs run",
        "best",
        "final train_loss",
        "final val_loss",
        "final val_accuracy",
        "test_accuracy",
    ]  # batch_size, hidden, epochs: the same in both
    assert rows["run"] == ["checkpoints/slow", "checkpoints/fast"]
    assert rows["lr"] == ["0.01", "0.1"]
    assert rows["best"] == ["val_loss 0.6 (epoch 2)", "val_loss 0.3 (epoch 3)"]
    assert rows["final val_loss"] == ["0.7", "0.3"] and rows["test_accuracy"] == ["0.91", "0.95"]
    assert rows["epochs run"] == ["3/3", "3/3"]
    second = lines[0].index("checkpoints/fast")  # aligned: the second run's column starts there on every line
    assert [line[second:].split("  ")[0] for line in lines[1:5]] == ["digit-mlp", "default", "0.1", "3/3"]
    with Image.open(runs / "figs" / "cmp.png") as image:
        assert image.format == "PNG"


def test_compare_writes_compare_png_here_by_default(runs, capsys):
    assert main(["compare", "checkpoints/slow", "checkpoints/fast/best.pt"]) == 0
    assert capsys.readouterr().out.endswith("\nfigure: compare.png\n")
    assert (runs / "compare.png").is_file()


def test_compare_help_names_the_runs_and_out_with_its_default(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["compare", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "RUN [RUN ...]" in text and "--out FILE" in text and "(default: compare.png)" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "compare" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, says",
    [
        (["checkpoints/slow", "checkpoints/nowhere"], "there is no run folder checkpoints/nowhere"),
        (["checkpoints/slow"], "compare needs at least two runs, got 1"),
        (["checkpoints/slow", "checkpoints/fast", "--out", "cmp.svg"], "--out must be a .png file or a folder"),
    ],
)
def test_a_mistake_is_one_line_with_status_2_and_writes_nothing(runs, capsys, argv, says):
    assert main(["compare", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("torchlab compare: error: ") and says in captured.err
    assert captured.err.count("\n") == 1
    assert sorted(p.name for p in runs.iterdir()) == ["checkpoints"]


def test_compare_help_answers_without_importing_torch():
    code = (
        "import sys\nfrom torchlab.cli.main import main\ntry:\n    main(['compare', '--help'])\n"
        "except SystemExit as exc:\n    print(exc.code, 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "0 False", proc.stderr
