"""Crash safety: SIGKILL a training run mid-epoch and again in the middle of writing last.pt;
resuming finishes the run with exactly the weights of an uninterrupted run, and no .pt file on
disk is ever unreadable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from conftest import ROOT
from torchlab.cli.main import main
from torchlab.engine.checkpoint import read_checkpoint

WORKER = Path(__file__).resolve().parents[1] / "crash_worker.py"
EPOCHS = 4
TRAIN_ARGS = [
    "train",
    "digit-mlp",
    "--device",
    "cpu",
    "--epochs",
    str(EPOCHS),
    "--no-figures",
    "--no-progress",
    "--seed",
    "3",
]


def start(mode: str, epoch: int, marker: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, str(WORKER), mode, str(epoch), str(marker), *TRAIN_ARGS, "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_stalled(proc: subprocess.Popen, marker: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker ended before the stall point: {proc.communicate()}")
        assert time.monotonic() < deadline, "worker never reached the stall point"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def train_here(out: Path, *extra: str) -> None:
    """The same CLI run in this process, with the worker's single thread (identical arithmetic)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*TRAIN_ARGS, "--out", str(out), *extra]) == 0
    finally:
        torch.set_num_threads(threads)


def assert_all_checkpoints_readable(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.pt"))
    for path in files:
        read_checkpoint(path)  # raises CheckpointError on a torn file
    return files


def test_sigkill_mid_epoch_and_mid_write_then_resume_equals_uninterrupted(tmp_path):
    run = tmp_path / "run"

    # 1. killed in the middle of epoch 2: last.pt is epoch 1's, intact
    kill_when_stalled(start("batch", 2, tmp_path / "m1", run), tmp_path / "m1")
    assert [p.name for p in assert_all_checkpoints_readable(run)] == ["best.pt", "last.pt"]
    assert read_checkpoint(run / "last.pt")["epoch"] == 1

    # 2. resumed, then killed half-way through writing last.pt after epoch 3
    kill_when_stalled(start("write", 2, tmp_path / "m2", run, "--resume"), tmp_path / "m2")
    torn = list(run.glob(".last.pt.*.tmp"))
    assert len(torn) == 1 and torn[0].stat().st_size > 0  # the kill really landed inside the write
    assert_all_checkpoints_readable(run)
    assert read_checkpoint(run / "last.pt")["epoch"] == 2  # the old file, untouched by the torn write

    # 3. resumed again: runs to the end and cleans up the torn temporary file
    train_here(run, "--resume")
    train_here(tmp_path / "ref")  # the uninterrupted run
    assert not list(run.glob(".*.tmp"))
    for name in ("last.pt", "best.pt"):
        got, want = read_checkpoint(run / name), read_checkpoint(tmp_path / "ref" / name)
        assert got["epoch"] == want["epoch"] == (EPOCHS if name == "last.pt" else want["epoch"])
        assert got["state_dict"].keys() == want["state_dict"].keys()
        for key, value in want["state_dict"].items():
            assert torch.equal(got["state_dict"][key], value), f"{name}: {key} differs from the uninterrupted run"
    resumed_history = [row["val_loss"] for row in read_checkpoint(run / "last.pt")["history"]]
    assert resumed_history == [row["val_loss"] for row in read_checkpoint(tmp_path / "ref" / "last.pt")["history"]]
    assert (run / "history.csv").read_text().count("\n") == EPOCHS + 1

    # 4. resuming a finished run with a smaller --epochs has nothing to do and changes nothing
    before = (run / "last.pt").read_bytes()
    train_here(run, "--resume", "--epochs", "2")
    assert (run / "last.pt").read_bytes() == before
