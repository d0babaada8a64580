"""Shared test helpers: run the CLI in-process or in a fresh process, and a tiny classification set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def run_torchlab(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m torchlab ARGS` in a new process; returns the completed process (text output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "torchlab", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def cli():
    """The CLI in a subprocess: cli("train", "digit-mlp", ...) -> CompletedProcess."""
    return run_torchlab


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def blobs():
    """Three well-separated Gaussian blobs in 2-D: (x, y) float/long tensors, 300 samples."""
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = torch.arange(300) % 3
    x = centers[y] + 0.6 * torch.randn(300, 2, generator=g)
    return x, y


@pytest.fixture(scope="session")
def tiny_keypoint_checkpoint(tmp_path_factory):
    """best.pt of a keypoint-net trained for one short epoch on 40 synthetic faces (for predict plumbing, not accuracy)."""
    import torchlab

    out = tmp_path_factory.mktemp("tiny-keypoint-net")
    torchlab.train("keypoint-net", out=out, device="cpu", progress=False, figures=False, synthetic=40, width=4,
                   epochs=1, batch_size=16, augment=False)
    return out / "best.pt"
