"""Each script in scripts/ trains what `torchlab.train` trains: for the same task, recipe, seed and
overrides, best.pt and last.pt hold the same weights and the same metadata (wall-clock seconds aside).

The scripts run in this process (their `main(argv)`), on tiny data and one or two epochs. Each case
also trains with one field of the recipe changed and checks that the weights move: a script that
dropped that field would fail the comparison.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
import torch

import torchlab
from conftest import ROOT
from mnist_files import write_mnist
from torchlab.engine.checkpoint import read_checkpoint

SEED = 3  # not 0: the seed must reach the weights, the split and the batches alike


def run_script(name: str, *args: Any) -> None:
    main = runpy.run_path(str(ROOT / "scripts" / name), run_name="script")["main"]
    main([str(a) for a in args])


# Left out of the comparison: timings, and the state of Python's own generator, which a module imported
# for the first time after seeding may draw from (rich does), so it depends on what this process ran before.
IGNORED = {"seconds", "python", "digest"}  # the digest covers the ignored values too


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two checkpoints (or parts of them) differ, the IGNORED keys aside."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (set(a) | set(b)) - IGNORED
        return [
            d
            for k in sorted(keys, key=str)
            for d in (differences(a[k], b[k], f"{where}.{k}") if k in a and k in b else [f"{where}.{k} missing"])
        ]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return [] if a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b) else [where]
    return [] if type(a) is type(b) and a == b else [where]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = read_checkpoint(a)["state_dict"], read_checkpoint(b)["state_dict"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# name: (script, task, recipe, the overrides (the script's flags, torchlab.train's keywords), a field that matters)
CASES = {
    "digits": ("train_digits.py", "digit-mlp", "default", {"epochs": 2, "batch_size": 128}, {"lr": 0.1}),
    # mnist-cnn with channels-last, AdamW and a one-cycle warm-up of 0.25
    "mnist": ("train_mnist.py", "mnist", "default", {"epochs": 1, "batch_size": 64, "val_size": 50}, {"lr": 0.05}),
    # "long": augmentation and label smoothing (on the small mnist-mlp, to stay fast)
    "mnist-long": (
        "train_mnist.py",
        "mnist",
        "long",
        {"model": "mnist-mlp", "epochs": 1, "batch_size": 64, "val_size": 50},
        {"label_smoothing": 0.0},
    ),
    # keypoint-net's CPU recipe: augmentation, the mean face as its first answer, masked loss
    "keypoints": (
        "train_keypoints.py",
        "keypoint-net",
        "cpu",
        {"synthetic": 48, "width": 4, "epochs": 1, "batch_size": 16},
        {"augment": False},
    ),
    "patch": ("train_patch.py", "patch-linear", "default", {"epochs": 30}, {"lr": 0.2}),
    "ring": ("train_ring.py", "ring-mlp", "default", {"epochs": 40, "points": 300}, {"lr": 0.05}),
    # every Trainer-facing field away from its default (compile aside: minutes of inductor on a CPU; its
    # hand-over is checked in tests/engine/test_from_config.py), so a script that dropped one would differ
    "digits-every-field": (
        "train_digits.py",
        "digit-mlp",
        "default",
        {
            "epochs": 4,
            "batch_size": 128,
            "grad_clip": 0.5,
            "accumulate": 2,
            "ema": 0.9,
            "max_time": "1h",
            "patience": 2,
            "min_delta": 1e-4,
            "baseline": 10.0,
            "start_from_epoch": 1,
            "stopping_threshold": 1e-6,
            "divergence_threshold": 1e3,
            "check_finite": False,
            "channels_last": True,
            "amp": True,
        },
        {"ema": 0.5},
    ),
}


def flags(overrides: dict[str, Any]) -> list[Any]:
    def flag(name: str, value: Any) -> list[Any]:
        dashed = name.replace("_", "-")
        if isinstance(value, bool):
            return [f"--{dashed}" if value else f"--no-{dashed}"]
        return [f"--{dashed}", value]

    return [part for name, value in overrides.items() for part in flag(name, value)]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"), n_train=250, n_test=40)


@pytest.mark.parametrize("case", list(CASES))
def test_script_trains_the_same_weights_as_the_api(case, tmp_path, mnist_dir, capsys):
    script, task, recipe, overrides, changed = CASES[case]
    if task == "mnist":
        overrides = {**overrides, "data_dir": str(mnist_dir)}
    run_script(
        script,
        "--recipe",
        recipe,
        "--seed",
        SEED,
        "--device",
        "cpu",
        "--out",
        tmp_path / "script",
        "--no-figures",
        *flags(overrides),
        *(["--model", task] if task.startswith("keypoint") else []),
    )
    assert "(epoch" in capsys.readouterr().out  # the script got as far as loading its checkpoint back

    def api(out: str, **more: Any) -> None:
        torchlab.train(
            task,
            recipe,
            seed=SEED,
            device="cpu",
            out=tmp_path / out,
            progress=False,
            figures=False,
            **{**overrides, **more},
        )

    api("api")
    for name in ("best.pt", "last.pt"):
        script_ckpt, api_ckpt = tmp_path / "script" / name, tmp_path / "api" / name
        assert same_weights(script_ckpt, api_ckpt), name
        assert differences(read_checkpoint(script_ckpt), read_checkpoint(api_ckpt)) == [], name

    # the comparison can fail: one recipe field changed gives other weights
    ((field, value),) = changed.items()
    api("changed", **{field: value})
    assert read_checkpoint(tmp_path / "changed" / "last.pt")["config"][field] == value
    assert not same_weights(tmp_path / "script" / "last.pt", tmp_path / "changed" / "last.pt")


def test_a_script_run_resumes_with_torchlab_train(tmp_path, capsys):
    """The script's last.pt carries the config and optimizer state `torchlab train --resume` needs."""
    out = tmp_path / "run"
    run_script("train_digits.py", "--device", "cpu", "--epochs", "1", "--out", out, "--no-figures")
    result = torchlab.train(
        "digit-mlp", "default", device="cpu", out=out, resume=True, epochs=2, progress=False, figures=False
    )
    assert [row["epoch"] for row in result.history] == [1, 2]
    with pytest.raises(torchlab.UsageError, match="--lr"):  # a changed schedule is refused, as for any run
        torchlab.train(
            "digit-mlp", "default", device="cpu", out=out, resume=True, epochs=3, lr=0.1, progress=False, figures=False
        )
