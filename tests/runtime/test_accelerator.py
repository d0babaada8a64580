"""The GPU half: every task trains on CUDA/MPS and its checkpoint predicts alike on the CPU; bf16
autocast, torch.compile and channels-last train with finite losses; compiled and DDP-wrapped
models save plain state_dicts; TensorBatcher shuffles on the device exactly as on the CPU;
resume is bit-exact on CUDA with deterministic algorithms; torchrun runs over NCCL; and a GPU
out-of-memory is a one-line error that suggests --batch-size.

Tests marked `accelerator` run once per accelerator torch sees (CUDA, MPS) and are skipped
with a one-line reason on a CPU-only machine; `pytest -m accelerator` selects them and
`make gpu-check` runs them before the GPU benchmarks. The tests at the end check the helpers
(tests/accelerators.py) and run everywhere.

Tolerances, relative to the largest |output| (at least 1):
  FP32_TOL  float32 predictions, accelerator vs CPU: CUDA convolutions use TF32 (a 10-bit
            mantissa) by default, which moves outputs by about 1e-3 of their size.
  FP64_TOL  the same weights in float64 (not on MPS, which has no float64): only the order of
            the sums differs between the devices.
Exact resume has no tolerance: with torch.use_deterministic_algorithms(True) and
CUBLAS_WORKSPACE_CONFIG set, an interrupted-and-resumed run must hold the same bits.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import torchlab
from accelerators import (
    COMMON_FLAGS,
    TASK_FLAGS,
    available_accelerators,
    cuda_only,
    non_finite_losses,
    pick_task,
    skip_reason,
    task_args,
    write_fake_mnist,
)
from conftest import ROOT
from torchlab.cli.main import build_parser, main
from torchlab.data.batcher import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.models import build_model, get_model_spec
from torchlab.tasks import task_names

ACCELERATORS = available_accelerators()
DEVICES = ACCELERATORS or [pytest.param("none", marks=pytest.mark.skip(reason=skip_reason(ACCELERATORS)))]
TASKS = [*task_names(), "keypoint-cnn", "keypoint-fcn"]  # every task, and keypoints' other models (aliases)
NPROCS = sorted({1, torch.cuda.device_count()}) if "cuda" in ACCELERATORS else [1]
FP32_TOL = 1e-2
FP64_TOL = 1e-9
DETERMINISTIC_WORKER = Path(__file__).resolve().parents[1] / "deterministic_worker.py"

accelerator = pytest.mark.accelerator
on_accelerators = pytest.mark.parametrize("device", DEVICES)

# Feature tests pick the first registered task of each list.
CONV_TASKS = ("keypoints", "mnist")
COMPILE_TASKS = ("mnist", "digits")
# A constant learning rate, so stopping after epoch 1 of `--epochs 1` is stopping after epoch 1 of 2.
RESUME_FLAGS = {
    "keypoint-cnn": ["--recipe", "seed", "--missing", "mask", "--batch-size", "16"],
    "digits": ["--recipe", "seed"],
}
# Activations no GPU holds: mnist's first conv with 2^20 maps (820 GB in bf16 for 500 images), or
# the digit MLP with 2^25 hidden units over all 1,293 training rows at once (173 GB).
OOM_FLAGS = {
    "mnist": ["--channels", "1048576", "8", "8", "--batch-size", "1000000"],
    "digits": ["--hidden", "33554432", "--batch-size", "1000000"],
}


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory) -> Path:
    return write_fake_mnist(tmp_path_factory.mktemp("mnist"))


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def train(task: str, device: str, out: Path, *extra: str, epochs: int = 1, mnist_dir: Path | str = ".") -> str:
    """`torchlab train TASK` with small data, in this process; its stdout. A non-zero exit fails the test."""
    args = [
        "train",
        task,
        "--device",
        device,
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        *task_args(task, mnist_dir),
        *extra,
    ]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(args)
    assert status == 0, f"torchlab {' '.join(args)} exited {status}: {stderr.getvalue()[-2000:]}"
    return stdout.getvalue()


@torch.no_grad()
def outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    return model(x.to(device)).double().cpu()


def assert_same_predictions(path: Path, device: str) -> None:
    """The checkpoint loads on the CPU and on `device`, and both give the same outputs (see the tolerances)."""
    on_cpu, meta = torchlab.load(path, device="cpu")
    on_device, _ = torchlab.load(path, device=device)
    assert next(on_device.parameters()).device.type == device
    shape = get_model_spec(meta["model"]["name"]).input_shape
    x = torch.rand((8, *shape), generator=torch.Generator().manual_seed(0))
    expected, got = outputs(on_cpu, x), outputs(on_device, x)
    assert torch.isfinite(expected).all()
    scale = max(1.0, expected.abs().max().item())
    gap = (got - expected).abs().max().item()
    assert gap <= FP32_TOL * scale, (
        f"float32 outputs on {device} differ from the CPU's by {gap:.3g} (scale {scale:.3g})"
    )
    if device != "mps":
        expected, got = outputs(on_cpu.double(), x.double()), outputs(on_device.double(), x.double())
        gap = (got - expected).abs().max().item()
        assert gap <= FP64_TOL * scale, f"float64 outputs on {device} differ from the CPU's by {gap:.3g}"


def assert_plain_state_dict(checkpoint: dict) -> None:
    """No torch.compile (`_orig_mod.`) or DDP (`module.`) prefixes: exactly a fresh model's keys."""
    keys = set(checkpoint["state_dict"])
    wrapped = sorted(k for k in keys if k.startswith(("_orig_mod.", "module.")) or "._orig_mod." in k)
    assert not wrapped, f"wrapper prefixes in the saved state_dict: {wrapped[:5]}"
    spec = checkpoint["model"]
    assert keys == set(build_model(spec["name"], **spec.get("kwargs", {})).state_dict())


def cuda_memory_baseline(device: str) -> int:
    """Bytes allocated on the GPU now, with the peak counter reset to it (0 off CUDA)."""
    if device != "cuda":
        return 0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


# ------------------------------------------------------------------ every task
@accelerator
@on_accelerators
@pytest.mark.parametrize("task", TASKS)
def test_task_trains_on_the_accelerator_and_its_checkpoint_predicts_alike_on_the_cpu(
    device, task, tmp_path, fake_mnist
):
    out = tmp_path / task
    baseline = cuda_memory_baseline(device)
    train(task, device, out, mnist_dir=fake_mnist)
    if device == "cuda":  # the run really put tensors on the GPU
        assert torch.cuda.max_memory_allocated() > baseline
    assert not non_finite_losses(out / "history.csv")
    assert_same_predictions(out / "best.pt", device)


@accelerator
@on_accelerators
def test_a_cpu_checkpoint_loads_on_the_accelerator_with_the_same_predictions(device, tmp_path, fake_mnist):
    task = pick_task(("digits", *TASKS), TASKS)
    train(task, "cpu", tmp_path / "cpu", mnist_dir=fake_mnist)
    assert_same_predictions(tmp_path / "cpu" / "best.pt", device)


# ------------------------------------------------------------- speed options
@accelerator
@on_accelerators
@pytest.mark.parametrize("flag", ["--amp", "--channels-last"])
def test_bf16_autocast_and_channels_last_train_with_finite_losses(device, flag, tmp_path, fake_mnist):
    if flag == "--amp" and (reason := cuda_only(device, "bf16 autocast")):
        pytest.skip(reason)
    candidates = CONV_TASKS if flag == "--channels-last" else (*CONV_TASKS, "digits")
    task = pick_task(candidates, TASKS)
    if task is None:
        pytest.skip(f"{flag} needs one of the tasks {', '.join(candidates)}; none is registered")
    out = tmp_path / "run"
    train(task, device, out, flag, epochs=2, mnist_dir=fake_mnist)
    assert not non_finite_losses(out / "history.csv")
    weights = read_checkpoint(out / "last.pt")["state_dict"].values()
    assert {t.dtype for t in weights if t.is_floating_point()} == {torch.float32}  # autocast keeps float32 weights
    assert_same_predictions(out / "best.pt", device)


@accelerator
@on_accelerators
def test_compile_trains_and_saves_a_plain_state_dict(device, tmp_path, fake_mnist):
    task = pick_task(COMPILE_TASKS, TASKS)
    out = tmp_path / "compiled"
    train(task, device, out, "--compile", mnist_dir=fake_mnist)
    assert not non_finite_losses(out / "history.csv")
    assert_plain_state_dict(read_checkpoint(out / "best.pt"))
    assert_same_predictions(out / "best.pt", device)


# ------------------------------------------------------------- TensorBatcher
@accelerator
@on_accelerators
@pytest.mark.parametrize(("seed", "epoch"), [(0, 0), (0, 5), (7, 1)])
def test_tensor_batcher_keeps_batches_on_the_device_and_shuffles_like_the_cpu(device, seed, epoch):
    x = torch.arange(1000)
    on_cpu = TensorBatcher((x, 3 * x), 64, shuffle=True, seed=seed)
    on_device = TensorBatcher((x, 3 * x), 64, shuffle=True, seed=seed, device=device)
    on_cpu.set_epoch(epoch)
    on_device.set_epoch(epoch)
    batches = list(on_device)
    assert len(batches) == len(on_device) == 16
    assert {t.device.type for batch in batches for t in batch} == {device}
    order = torch.cat([b[0] for b in batches]).cpu()
    assert torch.equal(order, torch.cat([b[0] for b in on_cpu]))  # the same function of (seed, epoch)
    assert torch.equal(torch.cat([b[1] for b in batches]).cpu(), 3 * order)  # targets stay aligned
    assert sorted(order.tolist()) == list(range(1000))
    on_device.set_epoch(epoch + 1)
    assert not torch.equal(torch.cat([b[0] for b in on_device]).cpu(), order)
    in_order = TensorBatcher((x,), 300, device=device)  # evaluation: contiguous slices on the device
    assert torch.equal(torch.cat([b[0] for b in in_order]).cpu(), x)


# ------------------------------------------------------------- exact resume
@accelerator
@on_accelerators
def test_resume_on_cuda_is_bit_exact_with_deterministic_algorithms(device, tmp_path, fake_mnist):
    if reason := cuda_only(device, "exact resume with deterministic algorithms"):
        pytest.skip(reason)
    task = pick_task(RESUME_FLAGS, TASKS)
    base = ["train", task, "--device", device, *task_args(task, fake_mnist), *RESUME_FLAGS[task]]
    straight, split = tmp_path / "straight", tmp_path / "split"
    env = subprocess_env(CUBLAS_WORKSPACE_CONFIG=":4096:8")
    warnings = set()
    for args in (
        [*base, "--epochs", "2", "--out", str(straight)],
        [*base, "--epochs", "1", "--out", str(split)],
        [*base, "--epochs", "2", "--out", str(split), "--resume"],
    ):
        proc = subprocess.run(
            [sys.executable, str(DETERMINISTIC_WORKER), *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr[-3000:]}"
        warnings |= {line.strip() for line in proc.stderr.splitlines() if "deterministic" in line}
    a, b = read_checkpoint(straight / "last.pt"), read_checkpoint(split / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    differ = {
        k: (a["state_dict"][k] - b["state_dict"][k]).abs().max().item()
        for k in a["state_dict"]
        if not torch.equal(a["state_dict"][k], b["state_dict"][k])
    }
    assert not differ, (
        f"resumed weights differ from the uninterrupted run's (max |diff| per tensor): {differ}; "
        f"ops without a deterministic kernel: {sorted(warnings) or 'none reported'}"
    )
    rows = [[{k: v for k, v in row.items() if k != "seconds"} for row in c["history"]] for c in (a, b)]
    assert rows[0] == rows[1]


# ------------------------------------------------------------ torchrun, NCCL
@accelerator
@on_accelerators
@pytest.mark.parametrize("nproc", NPROCS)
def test_torchrun_over_nccl_with_compile_writes_a_checkpoint_the_cpu_reproduces(device, nproc, tmp_path):
    if reason := cuda_only(device, "torchrun with NCCL"):
        pytest.skip(reason)
    from torchlab.data.digits import load_digits_split

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "torchlab",
        "train",
        "digit-mlp",
        "--device",
        device,
        "--epochs",
        "2",
        "--compile",
        "--out",
        str(out),
        *COMMON_FLAGS,
    ]
    proc = subprocess.run(
        cmd, env=subprocess_env(OMP_NUM_THREADS="1", NCCL_DEBUG="INFO"), capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NCCL INFO" in proc.stdout + proc.stderr  # the process group ran over NCCL
    assert proc.stdout.count("test_accuracy:") == 1  # rank 0 alone prints
    checkpoint = read_checkpoint(out / "last.pt")
    assert checkpoint["world_size"] == nproc and checkpoint["epoch"] == 2
    assert_plain_state_dict(checkpoint)
    assert not non_finite_losses(out / "history.csv")
    model, meta = torchlab.load(out / "best.pt", device="cpu")
    data = load_digits_split()
    with torch.no_grad():
        cpu_accuracy = (model(data.x_test).argmax(1) == data.y_test).double().mean().item()
    assert abs(cpu_accuracy - meta["metrics"]["test_accuracy"]) <= 1 / len(data.y_test) + 1e-9


# ------------------------------------------------------------- out of memory
@accelerator
@on_accelerators
def test_gpu_out_of_memory_is_a_one_line_error_suggesting_batch_size(device, tmp_path, fake_mnist):
    if reason := cuda_only(device, "the out-of-memory check"):
        pytest.skip(reason)
    task = pick_task(OOM_FLAGS, TASKS)
    out = tmp_path / "oom"
    args = [
        "train",
        task,
        "--device",
        device,
        "--epochs",
        "1",
        "--out",
        str(out),
        *task_args(task, fake_mnist),
        *OOM_FLAGS[task],
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "torchlab", *args], env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("torchlab train: error:")]
    assert len(errors) == 1 and "out of memory" in errors[0] and "--batch-size" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == errors[0]
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


# ---------------------------------------------- the helpers, on every machine
def test_skip_reason_is_one_line_naming_cuda_and_mps():
    reason = skip_reason([])
    assert "\n" not in reason and "CUDA" in reason and "MPS" in reason
    assert skip_reason(["cuda"]) is None and skip_reason(["mps"]) is None


def test_accelerator_tests_are_skipped_with_that_reason_exactly_when_no_accelerator_is_found():
    if ACCELERATORS:
        assert DEVICES == ACCELERATORS
    else:
        (param,) = DEVICES
        assert [m.kwargs["reason"] for m in param.marks if m.name == "skip"] == [skip_reason([])]


def test_cuda_only_features_skip_elsewhere():
    assert cuda_only("cuda", "bf16 autocast") is None
    assert cuda_only("mps", "bf16 autocast") == "bf16 autocast is CUDA-only; this run is on mps"


def test_pick_task_prefers_the_first_registered():
    assert pick_task(("mnist", "digit-mlp"), ["digit-mlp", "mnist"]) == "mnist"
    assert pick_task(("mnist", "digit-mlp"), ["digit-mlp"]) == "digit-mlp"
    assert pick_task(("mnist",), ["digit-mlp"]) is None
    for table in (RESUME_FLAGS, OOM_FLAGS):  # every feature test finds a task in this torchlab
        assert pick_task(table, TASKS) is not None


@pytest.mark.parametrize("task", TASKS)
def test_every_registered_task_has_small_data_flags_the_cli_accepts(task, tmp_path):
    args = build_parser().parse_args(
        ["train", task, "--device", "cpu", "--out", str(tmp_path), *task_args(task, tmp_path)]
    )
    assert args.no_figures and args.no_progress


def test_the_feature_tests_flags_are_flags_the_cli_accepts(tmp_path):
    """What the accelerator tests pass besides the small-data flags parses here, on the CPU."""
    runs = [(task, flags) for table in (RESUME_FLAGS, OOM_FLAGS) for task, flags in table.items() if task in TASKS]
    runs += [
        (task, [flag])
        for flag in ("--amp", "--channels-last", "--compile")
        for task in (*CONV_TASKS, *COMPILE_TASKS)
        if task in TASKS
    ]
    for task, flags in runs:
        build_parser().parse_args(
            ["train", task, "--device", "cpu", "--out", str(tmp_path), "--resume", *task_args(task, tmp_path), *flags]
        )


def test_task_args_fill_in_the_mnist_folder_and_name_the_table_for_unknown_tasks():
    assert task_args("mnist", "/data/m")[:2] == ["--data-dir", "/data/m"]
    assert set(TASK_FLAGS) >= {*task_names(), "digits"}
    with pytest.raises(KeyError, match="TASK_FLAGS"):
        task_args("no-such-task", ".")


def test_fake_mnist_is_readable_idx(tmp_path):
    from torchlab.data.mnist import load_mnist

    data = load_mnist(write_fake_mnist(tmp_path, n_train=30, n_test=20))
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_test.shape == (20, 1, 28, 28)
    assert data.y_train.tolist() == [i % 10 for i in range(30)]
    assert data.x_train[7, 0, 2 + 2 * 7, 10] > 0.9  # digit 7's bar


def test_non_finite_losses_are_reported(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,train_loss,val_loss,lr\n1,0.5,0.4,0.1\n2,nan,inf,0.1\n")
    assert non_finite_losses(path) == ["train_loss epoch 2 = nan", "val_loss epoch 2 = inf"]
    path.write_text("epoch,train_loss\n1,0.5\n")
    assert non_finite_losses(path) == []
    path.write_text("epoch,lr\n1,0.1\n")
    assert non_finite_losses(path) == [f"{path} has no loss column"]
