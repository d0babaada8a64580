"""tools/gpu_check.py on the CPU: the one-line "no accelerator" exit, the figures read from
recorded (and, for bench_mnist.py, freshly produced) output, the Markdown table, the steps it
plans, its time limits, and its flow from steps to table with stand-in steps."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from accelerators import available_accelerators, write_fake_mnist
from conftest import ROOT

SCRIPT = ROOT / "tools" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up there
spec.loader.exec_module(gpu_check)

PYTEST_PASSED = """\
........s.......                                                     [100%]
=========================== short test summary info ============================
SKIPPED [1] tests/test_accelerator.py:213: torchrun with NCCL is CUDA-only; this run is on mps
15 passed, 1 skipped in 95.31s (0:01:35)
"""
PYTEST_FAILED = """\
....F...F..                                                          [100%]
FAILED tests/test_accelerator.py::test_compile_trains_and_saves_a_plain_state_dict[cuda] - AssertionError: x
FAILED tests/test_accelerator.py::test_gpu_out_of_memory_is_a_one_line_error_suggesting_batch_size[cuda] - assert 1 == 2
2 failed, 9 passed, 3 warnings in 120.02s (0:02:00)
"""
BENCH_MNIST = """\
device cuda, torch threads 16, model mnist-cnn, 3 epochs of batch 128, amp True, channels_last True, compile False
torchlab  epoch 1:    0.41 s of training, test accuracy 0.9812
torchlab  epoch 2:    0.80 s of training, test accuracy 0.9903
torchlab  epoch 3:    1.19 s of training, test accuracy 0.9921
reference epoch 1:    9.50 s of training, test accuracy 0.9790
reference epoch 2:   19.10 s of training, test accuracy 0.9880
reference epoch 3:   28.40 s of training, test accuracy 0.9910
time to 0.990 test accuracy, torchlab: 0.80 s
time to 0.990 test accuracy, reference: 28.40 s
speed-up (reference / torchlab): 35.50x
"""
DIGITS = """\
task: digit-mlp
recipe: default
device: cuda
epochs: 20
fit_seconds: 1.0230
test_accuracy: 0.9833
checkpoint: /tmp/x/best.pt
"""
KEYPOINTS = """\
task: keypoint-net
device: cuda
epochs: 100
best_epoch: 97
fit_seconds: 48.2100
val_rmse_px: 1.3120
baseline_rmse_px: 3.4400
worst_keypoint: mouth_left_corner (2.100 px)
"""


def options(tmp_path: Path, **overrides) -> argparse.Namespace:
    args = gpu_check.parse_args(["--mnist-dir", str(tmp_path / "mnist"), "--faces-dir", str(tmp_path / "faces")])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


# ------------------------------------------------------------ no accelerator
@pytest.mark.skipif(bool(available_accelerators()), reason="this machine has an accelerator")
def test_without_an_accelerator_it_prints_one_line_and_no_figure(tmp_path):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the script needs no torchlab on the path to say so
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "table.md")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == gpu_check.NO_ACCELERATOR + "\n"
    assert proc.stdout.count("\n") == 1 and "|" not in proc.stdout
    assert not (tmp_path / "table.md").exists()


def test_no_accelerator_path_in_process(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(gpu_check, "find_accelerator", lambda: None)
    assert gpu_check.main(["--out", str(tmp_path / "t.md")]) == 0
    assert capsys.readouterr().out == "no accelerator (CUDA or MPS) found; nothing to measure\n"
    assert not (tmp_path / "t.md").exists()


# ------------------------------------------------------------------- figures
def test_pytest_figure_counts_and_names_failures():
    assert gpu_check.parse_pytest(PYTEST_PASSED) == "15 passed, 1 skipped in 95.3 s"
    assert gpu_check.parse_pytest(PYTEST_FAILED) == (
        "2 failed, 9 passed, 3 warnings in 120.0 s; failed: test_compile_trains_and_saves_a_plain_state_dict[cuda], "
        "test_gpu_out_of_memory_is_a_one_line_error_suggesting_batch_size[cuda]"
    )
    assert gpu_check.parse_pytest("ImportError: no module named x\n") == "no pytest summary in the output"


def test_mnist_figure_from_recorded_output():
    parsed = gpu_check.parse_bench_mnist(BENCH_MNIST)
    assert parsed["target"] == 0.99 and parsed["speedup"] == 35.5
    assert parsed["loops"]["torchlab"] == {"epochs": [(0.41, 0.9812), (0.80, 0.9903), (1.19, 0.9921)], "reached": 0.80}
    assert gpu_check.mnist_figure(BENCH_MNIST) == (
        "torchlab 0.80 s to 99.0% (0.9921 after 3 epochs, 1.19 s); "
        "reference 28.40 s to 99.0% (0.9910 after 3 epochs, 28.40 s); torchlab 35.5× faster to 99.0%"
    )
    not_reached = BENCH_MNIST.replace("reference: 28.40 s", "reference: not reached in 3 epochs")
    not_reached = not_reached.replace("speed-up (reference / torchlab): 35.50x\n", "")
    assert "reference 99.0% not reached (0.9910 after 3 epochs" in gpu_check.mnist_figure(not_reached)
    assert gpu_check.mnist_figure("error: no MNIST files\n") == "no results in the output"


def test_mnist_figure_reads_what_bench_mnist_prints(tmp_path, capsys):
    """The parser against the real script, one small epoch of both loops on a fake MNIST on the CPU."""
    sys.path.insert(0, str(ROOT / "tools"))
    import bench_mnist

    mnist = write_fake_mnist(tmp_path / "mnist", n_train=300, n_test=100)
    threads = torch.get_num_threads()
    try:
        assert (
            bench_mnist.main(
                ["--data-dir", str(mnist), "--device", "cpu", "--epochs", "1", "--threads", "1", "--target", "0.01"]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    shown = capsys.readouterr().out
    parsed = gpu_check.parse_bench_mnist(shown)
    assert set(parsed["loops"]) == {"torchlab", "reference"} and parsed["target"] == 0.01
    assert all(len(loop["epochs"]) == 1 and loop["reached"] is not None for loop in parsed["loops"].values())
    assert parsed["speedup"] is not None
    assert gpu_check.mnist_figure(shown).startswith("torchlab ")


def test_summary_figures_from_recorded_torchlab_train_output():
    assert gpu_check.summary_figure(DIGITS) == "test accuracy 0.9833 after 20 epochs in 1.0230 s of training"
    assert gpu_check.summary_figure(KEYPOINTS) == (
        "validation RMSE 1.3120 px (mean-keypoint baseline 3.4400 px) after 100 epochs in 48.2100 s of training"
    )
    assert gpu_check.summary_figure("Traceback ...\n") == "finished; no figure in its output"


def test_outcome_figures_for_each_status():
    step = gpu_check.Step("digits", [], "torchlab train digit-mlp --device cuda", 60, gpu_check.summary_figure)
    ok = gpu_check.Outcome("ok", 7.4, DIGITS, 0)
    assert gpu_check.outcome_figure(step, ok).endswith("in 1.0230 s of training; wall 7 s")
    assert gpu_check.outcome_figure(step, gpu_check.Outcome("timed out", 60.2)) == "timed out after 60 s"
    failed = gpu_check.Outcome("failed", 3.0, "loading\ntorchlab train: error: out of memory; try --batch-size\n", 2)
    assert (
        gpu_check.outcome_figure(step, failed)
        == "failed (exit 2): torchlab train: error: out of memory; try --batch-size"
    )
    skipped = gpu_check.Outcome("skipped", note="no MNIST folder .mnist")
    assert gpu_check.outcome_figure(step, skipped) == "skipped: no MNIST folder .mnist"
    tests = gpu_check.Step("tests", [], "pytest", 240, gpu_check.parse_pytest)
    assert gpu_check.outcome_figure(tests, gpu_check.Outcome("failed", 120, PYTEST_FAILED, 1)).startswith(
        "failed (exit 1): 2 failed, 9 passed"
    )


def test_markdown_table_has_one_row_per_command_and_escapes_pipes():
    table = gpu_check.format_table(
        "NVIDIA H100 80GB HBM3", "2.11.0+cu128", [("pytest -m accelerator", "15 passed"), ("a | b", "x\ny | z")]
    )
    lines = table.splitlines()
    assert lines[:2] == ["| device | torch | command | figure |", "| --- | --- | --- | --- |"]
    assert lines[2] == "| NVIDIA H100 80GB HBM3 | 2.11.0+cu128 | `pytest -m accelerator` | 15 passed |"
    assert lines[3] == "| NVIDIA H100 80GB HBM3 | 2.11.0+cu128 | `a \\| b` | x y \\| z |"
    assert len(lines) == 4 and table.endswith("\n")


# --------------------------------------------------------------------- plan
def test_plan_skips_what_has_no_data_and_passes_absolute_paths(tmp_path):
    steps = gpu_check.plan(options(tmp_path), "cuda", str(tmp_path / "scratch"))
    assert [s.name for s in steps] == [
        "tests",
        "mnist",
        "mnist-fast",
        "digits",
        "digits-cpu",
        "keypoints",
        "mnist-compile",
        "mnist-long",
    ]
    skipped = {s.name: s.skip for s in steps if s.skip}
    assert set(skipped) == {"mnist", "mnist-fast", "keypoints", "mnist-compile", "mnist-long"}
    assert "--mnist-dir" in skipped["mnist"] and "--faces-dir" in skipped["keypoints"]

    (tmp_path / "mnist").mkdir()
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "training.csv.gz").write_bytes(b"")
    steps = {s.name: s for s in gpu_check.plan(options(tmp_path, keypoint_epochs=7), "cuda", str(tmp_path / "s"))}
    assert not any(s.skip for s in steps.values())
    keypoints = steps["keypoints"]
    assert keypoints.argv[keypoints.argv.index("--data") + 1] == str((tmp_path / "faces" / "training.csv.gz").resolve())
    assert keypoints.argv[keypoints.argv.index("--epochs") + 1] == "7"
    assert keypoints.shown == (
        f"torchlab train keypoints --data {tmp_path / 'faces' / 'training.csv.gz'} --epochs 7 --device cuda"
    )
    assert steps["mnist-compile"].argv[-1] == "--compile" and steps["mnist-fast"].argv[-2:] == ["--recipe", "fast"]
    assert steps["digits-cpu"].argv[steps["digits-cpu"].argv.index("--device") + 1] == "cpu"
    outs = [s.argv[s.argv.index("--out") + 1] for s in steps.values() if "--out" in s.argv]
    assert len(set(outs)) == len(outs) and all(o.startswith(str(tmp_path / "s")) for o in outs)
    assert steps["tests"].argv[:4] == ["-m", "pytest", "-m", "accelerator"]


# ----------------------------------------------------------------- running
def test_a_step_past_its_time_limit_is_killed_with_its_children():
    child = (
        "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    started = time.monotonic()
    outcome = gpu_check.run_step(["-c", child], timeout=1.5)
    assert outcome.status == "timed out" and time.monotonic() - started < 30
    grandchild = int(outcome.output.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.1)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_main_runs_every_step_writes_the_table_and_logs_and_keeps_going(monkeypatch, capsys, tmp_path):
    summary = "print('test_accuracy: 0.9900'); print('fit_seconds: 0.5000')"
    steps = [
        gpu_check.Step("a", ["-c", summary], "cmd a", 30, gpu_check.summary_figure),
        gpu_check.Step("b", ["-c", "import sys; print('boom'); sys.exit(3)"], "cmd b", 30, gpu_check.summary_figure),
        gpu_check.Step("c", ["-c", "import time; time.sleep(30)"], "cmd c", 2, gpu_check.summary_figure),
        gpu_check.Step("d", ["-c", summary], "cmd d", 30, gpu_check.summary_figure, skip="no data"),
        gpu_check.Step("e", ["-c", summary], "cmd e", 30, gpu_check.summary_figure),
    ]
    monkeypatch.setattr(gpu_check, "find_accelerator", lambda: "cuda")
    monkeypatch.setattr(gpu_check, "device_name", lambda kind: "Test GPU")
    monkeypatch.setattr(gpu_check, "plan", lambda args, device, scratch: steps)
    out, logs = tmp_path / "gpu.md", tmp_path / "logs"
    status = gpu_check.main(["--out", str(out), "--logs", str(logs), "--skip", "e"])
    table = capsys.readouterr().out
    assert status == 1  # a step failed
    assert out.read_text() == table
    rows = [line.split(" | ")[-1].rstrip(" |") for line in table.splitlines()[2:]]
    assert re.fullmatch(r"test accuracy 0\.9900 in 0\.5000 s of training; wall \d+ s", rows[0])
    assert rows[1:] == ["failed (exit 3): boom", "timed out after 2 s", "skipped: no data", "skipped: --skip"]
    assert sorted(p.name for p in logs.iterdir()) == ["01-a.log", "02-b.log", "03-c.log"]
    assert "boom" in (logs / "02-b.log").read_text()


def test_main_stops_starting_steps_when_the_budget_is_spent(monkeypatch, capsys):
    steps = [gpu_check.Step("a", ["-c", "print('epochs: 1')"], "cmd a", 30, gpu_check.summary_figure)]
    monkeypatch.setattr(gpu_check, "find_accelerator", lambda: "cuda")
    monkeypatch.setattr(gpu_check, "device_name", lambda kind: "Test GPU")
    monkeypatch.setattr(gpu_check, "plan", lambda args, device, scratch: steps)
    assert gpu_check.main(["--budget", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("| skipped: time budget of 5 s used up |")


def test_every_planned_torchlab_command_parses(tmp_path):
    """The flags the check passes to `torchlab train` exist (a renamed flag would fail here, not on the GPU)."""
    from torchlab.cli.main import build_parser

    (tmp_path / "mnist").mkdir()
    steps = [
        s for s in gpu_check.plan(options(tmp_path), "cuda", str(tmp_path / "s")) if s.argv[:2] == ["-m", "torchlab"]
    ]
    assert [s.name for s in steps] == ["digits", "digits-cpu", "keypoints", "mnist-long"]
    for step in steps:
        args = build_parser().parse_args(step.argv[2:])
        assert args.no_figures and args.no_progress and args.device in ("cuda", "cpu")


def test_every_file_a_step_runs_exists(tmp_path):
    """The steps name files of this repository (tests, tools): a moved file must not turn a row into a failure."""
    args = gpu_check.parse_args(["--mnist-dir", str(tmp_path), "--faces-dir", str(tmp_path)])
    files = [arg for step in gpu_check.plan(args, "cuda", str(tmp_path)) for arg in step.argv if arg.endswith(".py")]
    assert "tests/runtime/test_accelerator.py" in files and "tools/bench_mnist.py" in files
    assert [f for f in files if not (ROOT / f).is_file()] == []
