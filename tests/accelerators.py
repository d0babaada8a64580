"""Helpers of the accelerator tests (test_accelerator.py); not a test module itself.

Which accelerators this machine has, the one-line reason the tests are skipped without one,
the small-data flags that make each task's `torchlab train` a seconds-long run, a tiny fake
MNIST folder in IDX format, and reading the losses of a run's history.csv. Nothing here
needs a GPU, so test_accelerator.py checks these helpers on every machine.
"""

from __future__ import annotations

import csv
import gzip
import math
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

# `torchlab train TASK` flags that make a run small: tiny data, no figures, no progress bar.
# "{mnist}" is replaced by the fake MNIST folder. A new task needs its entry here.
TASK_FLAGS: dict[str, list[str]] = {  # every task, and keypoints' other models by their old names (aliases)
    "digits": [],
    "mnist": ["--data-dir", "{mnist}", "--val-size", "100", "--batch-size", "100"],
    "keypoints": ["--synthetic", "64"],
    "keypoint-fcn": ["--synthetic", "64"],
    "keypoint-cnn": ["--synthetic", "64"],
    "patch": [],
    "ring": [],
}
COMMON_FLAGS = ["--no-figures", "--no-progress", "--seed", "0"]


def available_accelerators() -> list[str]:
    """The accelerator device types torch can use here: "cuda", "mps", both or none."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def skip_reason(found: list[str]) -> str | None:
    """One line saying why the accelerator tests cannot run here; None when they can."""
    if found:
        return None
    return (
        f"no accelerator: torch {torch.__version__} sees neither CUDA nor MPS on this machine "
        "(the accelerator tests run on a GPU machine, e.g. `make gpu-check`)"
    )


def cuda_only(device: str, feature: str) -> str | None:
    """The skip reason for a CUDA-only feature on another accelerator; None on CUDA."""
    return None if device == "cuda" else f"{feature} is CUDA-only; this run is on {device}"


def pick_task(preferred: Iterable[str], registered: Iterable[str]) -> str | None:
    """The first of `preferred` that is a registered task, or None."""
    names = set(registered)
    return next((name for name in preferred if name in names), None)


def task_args(task: str, mnist_dir: str | Path) -> list[str]:
    """The small-data flags of `task` (with the fake MNIST folder filled in) and the common ones."""
    if task not in TASK_FLAGS:
        raise KeyError(f"task {task!r} has no small-data flags; add it to TASK_FLAGS in tests/accelerators.py")
    return [flag.replace("{mnist}", str(mnist_dir)) for flag in TASK_FLAGS[task]] + COMMON_FLAGS


def _idx(array: np.ndarray) -> bytes:
    """IDX bytes of an unsigned-byte array: magic 0x0000080N, one big-endian uint32 per dimension."""
    return struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_fake_mnist(folder: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """The four gzipped MNIST IDX files of an easy fake set: digit d is a bright bar at row 2 + 2d."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, digit in enumerate(labels):
            images[i, 2 + 2 * digit : 4 + 2 * digit, 4:24] = 250
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    return folder


def history_losses(path: Path) -> dict[str, list[float]]:
    """Every `*loss` column of a history.csv, as floats (nan and inf included as such)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0] if rows else {}) if c.endswith("loss")]
    return {c: [float(row[c]) for row in rows] for c in columns}


def non_finite_losses(path: Path) -> list[str]:
    """'column epoch N = value' for each loss in history.csv that is not finite; a file without losses counts."""
    losses = history_losses(path)
    if not losses:
        return [f"{path} has no loss column"]
    return [
        f"{column} epoch {i + 1} = {value}"
        for column, values in losses.items()
        for i, value in enumerate(values)
        if not math.isfinite(value)
    ]
