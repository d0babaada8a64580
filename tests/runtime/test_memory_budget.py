"""Issue 40, part 1: memory is budgeted before it is spent. Every size a user controls (photo pixels, a --box,
synthetic face counts, predict batch sizes) is checked against a budget derived from the free memory, and
refused in one line naming the input and the limit, never a kill by the out-of-memory killer.

The two examples of the issue run in child processes under an address-space cap (RLIMIT_AS), both started at
once by one module fixture; the rest runs in-process with the free memory pinned by monkeypatch."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torchlab
import torchlab.runtime.guards as guards
from torchlab.cli.main import main
from torchlab.engine.checkpoint import make_checkpoint, save_checkpoint
from torchlab.errors import DataError, UsageError

ROOT = Path(__file__).resolve().parents[2]
CAP = int(4.5 * 2**30)  # torch alone maps about 3.2 GB of address space; this leaves about a gigabyte to spend


def one_line(capsys, status: int) -> str:
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def gray_photo(path: Path, width: int, height: int) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------ the examples, under a memory cap
def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """A 168 KB PNG that decodes to 12,000 x 12,000 pixels (under Pillow's hard limit, over its warning)."""
    huge = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("L", (12_000, 12_000), 128).save(huge)  # flat gray compresses well
    return huge


@pytest.fixture(scope="module")
def capped_runs(tmp_path_factory, huge_png):
    """keypoint predict of (a) a 200x200 photo with a 40,000-pixel box and (b) `huge_png`, each in a child
    process whose address space is capped at CAP: {name: (exit status, stdout, stderr)}."""
    folder = tmp_path_factory.mktemp("capped")
    small = gray_photo(folder / "small.png", 200, 200)
    model = torchlab.build_model("keypoint-net", width=4)  # untrained: a photo's predict needs only the model
    checkpoint = save_checkpoint(
        make_checkpoint(task="keypoint-net", model_name="keypoint-net", model=model, model_kwargs={"width": 4}),
        folder / "best.pt",
    )
    commands = {
        "box": ["predict", str(checkpoint), str(small), "--box=-19900,-19900,40000,40000"],
        "pixels": ["predict", str(checkpoint), str(huge_png)],
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "torchlab", *argv, "--device", "cpu", "--no-detect"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=folder,
            preexec_fn=_capped,
        )
        for name, argv in commands.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = (proc.returncode, out, err)
    return results


def test_a_box_far_larger_than_the_photo_is_refused_under_a_memory_cap(capped_runs):
    status, out, err = capped_runs["box"]
    assert status == 2, (status, err[-2000:])
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert "--box -19900,-19900,40000,40000 (a 47,600x47,600 crop of a 200x200 photo) would need about" in err
    assert "over the budget of" in err


def test_a_png_that_decodes_to_12000_by_12000_pixels_is_refused_under_a_memory_cap(capped_runs):
    status, out, err = capped_runs["pixels"]
    assert status == 2, (status, err[-2000:])
    assert len(err.strip().splitlines()) == 1 and out == "" and "Warning" not in err
    assert "huge.png is 12,000x12,000 pixels (144,000,000), over the" in err and "pixels torchlab decodes" in err


def test_the_digit_predict_refuses_the_same_png_in_one_line(huge_png, tmp_path, capsys):
    """The issue: digit predict refused it, but in three lines (Pillow's warnings first)."""
    model = torchlab.build_model("digit-mlp")
    save_checkpoint(
        make_checkpoint(task="digit-mlp", model_name="digit-mlp", model=model, model_kwargs={}), tmp_path / "m.pt"
    )
    err = one_line(capsys, main(["predict", str(tmp_path / "m.pt"), str(huge_png), "--device", "cpu"]))
    assert f"{huge_png} is 12,000x12,000 pixels (144,000,000), over the" in err


# ------------------------------------------------------------------------ the budget itself
def test_the_budget_is_a_share_of_the_memory_left_under_an_address_space_limit(monkeypatch):
    with open("/proc/self/status") as f:
        used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    monkeypatch.setattr(resource, "getrlimit", lambda which: (used + 10**9, resource.RLIM_INFINITY))
    free = guards.available_memory("cpu")
    assert 0.9e9 < free <= 1e9
    assert guards.memory_budget("cpu") == int(free * guards.BUDGET_FRACTION)
    with pytest.raises(
        UsageError,
        match=r"^2 widgets would need about 1.0 GB of memory, over the budget of \d+\.\d MB "
        r"\(80% of the (1.0 GB|\d+\.\d MB) free on cpu\); use fewer$",
    ):
        guards.check_memory(10**9, "2 widgets", "use fewer")
    guards.check_memory(10**8, "2 widgets", "use fewer")


@pytest.fixture
def little_memory(monkeypatch):
    """Pretend the machine has `set(bytes)` free."""

    def pin(free: int) -> None:
        monkeypatch.setattr(guards, "available_memory", lambda device="cpu": free)

    return pin


def test_the_pixel_limit_follows_the_budget(tmp_path, little_memory):
    from torchlab.data.images import PHOTO_BYTES_PER_PIXEL, load_gray, pixel_limit

    photo = gray_photo(tmp_path / "photo.png", 400, 300)
    little_memory(10**12)
    assert pixel_limit() == 89_478_485  # Pillow's own limit is the ceiling
    assert load_gray(photo).shape == (300, 400)
    little_memory(int(100_000 * PHOTO_BYTES_PER_PIXEL / 0.8))
    assert pixel_limit() == 100_000
    with pytest.raises(
        DataError,
        match=r"photo.png is 400x300 pixels \(120,000\), over the 100,000 pixels torchlab "
        r"decodes within its memory budget",
    ):
        load_gray(photo)


def test_synthetic_faces_a_checkpoint_asks_for_are_budgeted(tmp_path, capsys, monkeypatch):
    import torchlab.data.synthetic_faces as synthetic_faces

    def never(n, *args, **kwargs):
        raise AssertionError(f"make_faces({n:,}) was called")

    monkeypatch.setattr(synthetic_faces, "make_faces", never)
    model = torchlab.build_model("keypoint-net", width=4)
    save_checkpoint(
        make_checkpoint(
            task="keypoint-net",
            model_name="keypoint-net",
            model=model,
            model_kwargs={"width": 4},
            data={"synthetic": 10**9, "missing": "mask"},
        ),
        tmp_path / "many.pt",
    )  # evaluate draws the validation faces the checkpoint names
    err = one_line(capsys, main(["evaluate", str(tmp_path / "many.pt"), "--device", "cpu"]))
    assert "1,000,000,000 synthetic faces would need about 70.0 TB of memory, over the budget of" in err


def test_a_predict_batch_over_the_budget_is_refused_and_a_smaller_one_runs(tmp_path, little_memory, capsys):
    model = torchlab.build_model("digit-mlp")
    save_checkpoint(
        make_checkpoint(task="digit-mlp", model_name="digit-mlp", model=model, model_kwargs={}), tmp_path / "m.pt"
    )
    little_memory(200_000)
    err = one_line(capsys, main(["evaluate", str(tmp_path / "m.pt"), "--device", "cpu", "--batch-size", "1000"]))
    assert "--batch-size 1,000 (360 inputs a batch) would need about" in err and "lower --batch-size" in err
    assert main(["evaluate", str(tmp_path / "m.pt"), "--device", "cpu", "--batch-size", "20"]) == 0


def test_sample_bytes_measures_the_largest_layer_output():
    from torchlab.engine.inference import sample_bytes

    model = torch.nn.Sequential(torch.nn.Linear(10, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 2))
    assert sample_bytes(model, torch.zeros(1, 10)) == 10 * 4 + 4 * 1000 * 4
