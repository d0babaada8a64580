"""Progress output: per-batch bars in a terminal, one plain line per epoch elsewhere, silence when asked."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from conftest import ROOT
from torchlab import EarlyStopping, Trainer
from torchlab.data import TensorBatcher
from torchlab.engine.metrics import Accuracy
from torchlab.reporting.progress import mode


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def fit(blobs, monkeypatch, *, tty: bool, progress, epochs: int = 3, **kwargs) -> str:
    stream = FakeStream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    x, y = blobs
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.05),
        metrics={"accuracy": Accuracy()},
        epochs=epochs,
        progress=progress,
        **kwargs,
    )
    trainer.fit(TensorBatcher((x[:240], y[:240]), 32), TensorBatcher((x[240:], y[240:]), 64))
    return stream.getvalue()


def test_mode_follows_the_stream_the_bar_writes_to():
    assert mode(None, FakeStream(tty=True)) == "bars"
    assert mode(True, FakeStream(tty=True)) == "bars"
    assert mode(True, FakeStream(tty=False)) == "lines"
    assert mode(None, FakeStream(tty=False)) is None
    assert mode(False, FakeStream(tty=True)) is None


def test_not_a_terminal_gets_one_plain_line_per_epoch(blobs, monkeypatch):
    out = fit(blobs, monkeypatch, tty=False, progress=True)
    assert "\r" not in out and "\x1b" not in out  # no bar frames in a log file
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/3"], ["epoch", "2/3"], ["epoch", "3/3"]]
    for line in lines:
        assert "8 batches" in line and "train_loss=" in line and "val_loss=" in line and "val_accuracy=" in line


def test_auto_is_silent_when_not_a_terminal_and_false_is_silent_everywhere(blobs, monkeypatch):
    assert fit(blobs, monkeypatch, tty=False, progress=None) == ""
    assert fit(blobs, monkeypatch, tty=True, progress=False) == ""


def test_terminal_gets_a_per_batch_bar_with_total_and_a_kept_line_per_epoch(blobs, monkeypatch):
    out = fit(blobs, monkeypatch, tty=True, progress=None)
    assert "8/8" in out  # 240 samples in batches of 32: the bar counts batches against their total
    assert "batch/s" in out or "s/batch" in out
    # the kept lines are what stays once the carriage-return frames are overwritten
    kept = [frame.split("\r")[-1] for frame in out.split("\n")]
    epochs = [line for line in kept if line.startswith("epoch ") and "val_loss=" in line]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all("8 batches" in line for line in epochs)


def test_early_stopping_is_reported(blobs, monkeypatch):
    out = fit(
        blobs,
        monkeypatch,
        tty=False,
        progress=True,
        epochs=30,
        early_stopping=EarlyStopping("val_loss", "min", patience=0, min_delta=10.0),
    )
    assert out.splitlines()[-1] == (
        "early stopping: val_loss has not improved since epoch 1 (best " + out.split("val_loss=")[1].split()[0] + ")"
    )


def test_loss_is_read_off_the_device_rarely(blobs, monkeypatch):
    reads = []
    original = torch.Tensor.item

    def counting_item(self):
        reads.append(1)
        return original(self)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    fit(blobs, monkeypatch, tty=True, progress=True, epochs=2)
    assert len(reads) <= 2 * 2  # 16 steps in under a second: at most one loss read per half second per epoch


SCRIPT = textwrap.dedent("""
    import os
    import sys
    import torch
    from torch import nn
    from torchlab import Trainer
    from torchlab.data import TensorBatcher
    x = torch.randn(4096, 2); y = (x[:, 0] > 0).long()

    def fit(progress):
        model = nn.Linear(2, 2)
        Trainer(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), epochs=2,
                progress=progress).fit(TensorBatcher((x, y), 16), TensorBatcher((x[:256], y[:256]), 256))

    fit(None)  # stderr is the terminal
    for progress, log in ((True, sys.argv[1]), (None, sys.argv[2])):  # then as `2>log` would: fd 2 is a file
        sys.stderr.flush()
        terminal = os.dup(2)
        with open(log, "w") as file:
            os.dup2(file.fileno(), 2)
        fit(progress)
        sys.stderr.flush()
        os.dup2(terminal, 2)
""")


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a real terminal")
def test_a_real_terminal_shows_bars_and_a_redirected_stderr_gets_plain_lines(tmp_path):
    """One process in a real terminal: a run with stderr on the terminal, then two with fd 2 pointed at a
    file (the same file descriptor state as `python run.py 2>log`), progress=True and progress=auto."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="100")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    on_log, auto_log = tmp_path / "on.log", tmp_path / "auto.log"
    command = f"{sys.executable} {script} {on_log} {auto_log}"
    done = subprocess.run(["script", "-qec", command, "/dev/null"], env=env, capture_output=True, timeout=120)
    shown = done.stdout.decode().replace("\r\n", "\n")  # bytes: text mode would turn each \r into \n

    # stderr is the terminal: live bars (carriage returns) and one kept line per epoch
    assert "\r" in shown and "256/256" in shown
    kept = [frame.split("\r")[-1] for frame in shown.split("\n")]
    assert sum(line.startswith("epoch ") and "val_loss=" in line for line in kept) == 2
    # a file as stderr under a terminal: plain lines (progress=True) or nothing (auto), never bar frames
    lines = on_log.read_text().splitlines()
    assert b"\r" not in on_log.read_bytes() and [line.split()[:3] for line in lines] == [
        ["epoch", "1/2", "256"],
        ["epoch", "2/2", "256"],
    ]
    assert auto_log.read_text() == ""
