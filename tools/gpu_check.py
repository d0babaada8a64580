"""Everything a GPU can show about torchlab, in one command: the accelerator tests, then the GPU
benchmarks, as one Markdown table (device, torch, command, figure) ready for BENCHMARKS.md.

    make gpu-check GPU_CHECK_ARGS="..."      # or: python3 tools/gpu_check.py [options]
    options: [--mnist-dir .mnist] [--faces-dir .faces] [--keypoint-epochs 100] [--budget 420]
             [--out FILE] [--logs DIR] [--skip STEP]

It needs torch importable by the interpreter that runs it, nothing else: every step runs with
the repository root on PYTHONPATH, so torchlab need not be installed.

Steps, in this order, each in its own process with a time limit (a step that fails or runs out
of time is reported as such in the table and the next one runs):
  1. `pytest -m accelerator tests/runtime/test_accelerator.py`
  2. tools/bench_mnist.py: MNIST time to 99% through torchlab and the pytorch/examples-style
     reference loop in the same run, eager (the reference needs torchvision)
  3. the digit MLP: `torchlab train digits` on the accelerator, and on the CPU for comparison
  4. keypoint-net on the real faces: `torchlab train keypoints --data FACES/training.csv.gz`
  5. tools/bench_mnist.py --compile
  6. MNIST's long recipe: `torchlab train mnist --recipe long`
The whole run stops starting steps after --budget seconds. On a machine without CUDA or MPS it
prints one line and exits 0 without measuring anything. Progress goes to stderr; the table to
stdout (and to --out). --logs keeps every step's full output.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_ACCELERATOR = "no accelerator (CUDA or MPS) found; nothing to measure"
MIN_STEP_SECONDS = 15  # a step with less time than this left in the budget is not started


@dataclass
class Step:
    """One command of the check: what runs, what the table shows, how its figure is read."""

    name: str
    argv: list[str]  # after the Python interpreter
    shown: str  # the command as the table shows it
    cap: float  # seconds
    figure: Callable[[str], str]
    skip: str | None = None  # why it does not run


@dataclass
class Outcome:
    status: str  # "ok", "failed", "timed out", "skipped"
    seconds: float = 0.0
    output: str = ""
    returncode: int | None = None
    note: str = ""


# ---------------------------------------------------------------- accelerator
def find_accelerator() -> str | None:
    """ "cuda" or "mps" when torch can use one here, else None."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


def device_name(kind: str) -> str:
    import platform

    import torch

    if kind == "cuda":
        count = torch.cuda.device_count()
        return torch.cuda.get_device_name(0) + (f" ×{count}" if count > 1 else "")
    return f"Apple {platform.machine()} (MPS)"


# ------------------------------------------------------------------- parsers
def parse_pytest(output: str) -> str:
    """ "12 passed, 2 skipped in 95.3 s", plus the failed tests' names."""
    summary = None
    for line in output.splitlines():
        match = re.search(r"(\d+ (?:passed|failed|skipped|errors?|xfailed|xpassed|deselected)\b.*?) in ([\d.]+)s", line)
        if match:
            summary = f"{match.group(1).strip(' =')} in {float(match.group(2)):.1f} s"
    if summary is None:
        return "no pytest summary in the output"
    failed = [m.group(1) for m in re.finditer(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)]
    names = sorted({name.split("::", 1)[-1] for name in failed})
    return summary + (f"; failed: {', '.join(names)}" if names else "")


def parse_bench_mnist(output: str) -> dict:
    """bench_mnist.py's lines as {"target", "loops": {name: {"epochs": [(s, acc)], "reached": s | None}}, "speedup"}."""
    loops: dict[str, dict] = {}
    target = speedup = None
    for line in output.splitlines():
        if m := re.match(r"(\w+)\s+epoch (\d+):\s+([\d.]+) s of training, test accuracy ([\d.]+)", line):
            loops.setdefault(m.group(1), {"epochs": [], "reached": None})["epochs"].append(
                (float(m.group(3)), float(m.group(4)))
            )
        elif m := re.match(r"time to ([\d.]+) test accuracy, (\w+): (?:([\d.]+) s|not reached)", line):
            target = float(m.group(1))
            loops.setdefault(m.group(2), {"epochs": [], "reached": None})["reached"] = (
                float(m.group(3)) if m.group(3) else None
            )
        elif m := re.match(r"speed-up \(reference / torchlab\): ([\d.]+)x", line):
            speedup = float(m.group(1))
    return {"target": target, "loops": loops, "speedup": speedup}


def mnist_figure(output: str) -> str:
    """ "torchlab 0.95 s to 99.0% (0.9921 after 3 epochs, 1.31 s); reference 28.40 s (...); 29.9× faster"."""
    parsed = parse_bench_mnist(output)
    if not parsed["loops"]:
        return "no results in the output"
    target = parsed["target"]
    parts = []
    for name, loop in parsed["loops"].items():
        if not loop["epochs"]:
            continue
        seconds, acc = loop["epochs"][-1]
        if loop["reached"] is not None:
            head = f"{name} {loop['reached']:.2f} s to {target:.1%}"
        else:
            head = f"{name} {target:.1%} not reached" if target is not None else name
        parts.append(f"{head} ({acc:.4f} after {len(loop['epochs'])} epochs, {seconds:.2f} s)")
    if parsed["speedup"] is not None:
        parts.append(f"torchlab {parsed['speedup']:.1f}× faster to {target:.1%}")
    return "; ".join(parts)


def parse_summary(output: str) -> dict[str, str]:
    """The `key: value` lines `torchlab train` prints last."""
    fields = {}
    for line in output.splitlines():
        if m := re.match(r"([a-z_]+): (.+)$", line.strip()):
            fields[m.group(1)] = m.group(2).strip()
    return fields


SUMMARY_FIGURES = [  # (key, how the figure shows it)
    ("test_accuracy", "test accuracy {}"),
    ("val_rmse_px", "validation RMSE {} px"),
    ("baseline_rmse_px", "(mean-keypoint baseline {} px)"),
    ("epochs", "after {} epochs"),
    ("fit_seconds", "in {} s of training"),
]


def summary_figure(output: str) -> str:
    """The figures of a `torchlab train` summary, e.g. "test accuracy 0.9811 after 20 epochs in 1.02 s of training"."""
    fields = parse_summary(output)
    parts = [text.format(fields[key]) for key, text in SUMMARY_FIGURES if key in fields]
    return " ".join(parts) if parts else "finished; no figure in its output"


# -------------------------------------------------------------------- table
def markdown_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def format_table(device: str, torch_version: str, rows: list[tuple[str, str]]) -> str:
    """One Markdown table: a row per (command, figure), each with the device and torch version."""
    lines = ["| device | torch | command | figure |", "| --- | --- | --- | --- |"]
    for command, figure in rows:
        cells = [device, torch_version, f"`{command}`", figure]
        lines.append("| " + " | ".join(markdown_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def outcome_figure(step: Step, outcome: Outcome) -> str:
    """The table's figure cell for a step that ran (or did not)."""
    if outcome.status == "skipped":
        return f"skipped: {outcome.note}"
    if outcome.status == "timed out":
        return f"timed out after {outcome.seconds:.0f} s"
    try:
        figure = step.figure(outcome.output)
    except Exception as exc:  # a figure that cannot be read must not hide the others
        figure = f"output not understood ({type(exc).__name__}: {exc})"
    if outcome.status == "failed":
        last = next((line for line in reversed(outcome.output.splitlines()) if line.strip()), "")
        detail = figure if step.name == "tests" else last[:200]
        return f"failed (exit {outcome.returncode}): {detail}"
    return f"{figure}; wall {outcome.seconds:.0f} s"


# -------------------------------------------------------------------- steps
def plan(args: argparse.Namespace, device: str, scratch: str) -> list[Step]:
    """The steps of the check for these options, in order; `scratch` takes the training runs' outputs."""
    mnist, faces = Path(args.mnist_dir), Path(args.faces_dir)
    faces_csv = next((p for p in (faces / "training.csv.gz", faces / "training.csv") if p.exists()), None)
    no_mnist = None if mnist.is_dir() else f"no MNIST folder {mnist} (give --mnist-dir)"
    no_faces = None if faces_csv else f"no training.csv.gz in {faces} (give --faces-dir)"
    faces_csv = faces_csv or faces / "training.csv.gz"
    only = [] if importlib.util.find_spec("torchvision") else ["--only", "torchlab"]
    note = "" if not only else " (torchvision missing: no reference loop)"

    def mnist_bench(*extra: str) -> tuple[list[str], str]:
        flags = ["--device", device, "--data-dir", str(mnist), *only, *extra]
        return (
            ["tools/bench_mnist.py", "--device", device, "--data-dir", str(mnist.resolve()), *only, *extra],
            f"python tools/bench_mnist.py {' '.join(flags)}{note}",
        )

    def train(
        name: str, task: str, on: str, *flags: str, paths: tuple[tuple[str, Path], ...] = ()
    ) -> tuple[list[str], str]:
        given = [f"{flag} {path}" for flag, path in paths]
        absolute = [x for flag, path in paths for x in (flag, str(path.resolve()))]
        argv = [
            "-m",
            "torchlab",
            "train",
            task,
            *absolute,
            *flags,
            "--device",
            on,
            "--out",
            str(Path(scratch) / name),
            "--no-figures",
            "--no-progress",
        ]
        return argv, " ".join(["torchlab train", task, *given, *flags, "--device", on])

    epochs = ["--epochs", str(args.keypoint_epochs)]
    steps = [
        (
            "tests",
            (
                [
                    "-m",
                    "pytest",
                    "-m",
                    "accelerator",
                    "tests/runtime/test_accelerator.py",
                    "-rfEs",
                    "-p",
                    "no:cacheprovider",
                ],
                "pytest -m accelerator tests/runtime/test_accelerator.py",
            ),
            240,
            parse_pytest,
            None,
        ),
        ("mnist", mnist_bench(), 120, mnist_figure, no_mnist),
        ("mnist-fast", mnist_bench("--recipe", "fast"), 120, mnist_figure, no_mnist),
        ("digits", train("digits", "digits", device), 60, summary_figure, None),
        ("digits-cpu", train("digits-cpu", "digits", "cpu"), 60, summary_figure, None),
        (
            "keypoints",
            train("keypoints", "keypoints", device, *epochs, paths=(("--data", faces_csv),)),
            180,
            summary_figure,
            no_faces,
        ),
        ("mnist-compile", mnist_bench("--compile"), 240, mnist_figure, no_mnist),
        (
            "mnist-long",
            train("mnist-long", "mnist", device, "--recipe", "long", paths=(("--data-dir", mnist),)),
            120,
            summary_figure,
            no_mnist,
        ),
    ]
    return [Step(name, argv, shown, cap, figure, skip) for name, (argv, shown), cap, figure, skip in steps]


def run_step(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> Outcome:
    """Run `python ARGV` in its own process group; on timeout the whole group is killed."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return Outcome("timed out", timeout, output or "", None)
    seconds = time.perf_counter() - started
    return Outcome("ok" if proc.returncode == 0 else "failed", seconds, output, proc.returncode)


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist-dir", default=".mnist", help="folder with the four MNIST IDX files (default: .mnist)")
    p.add_argument(
        "--faces-dir", default=".faces", help="folder with the real faces' training.csv.gz (default: .faces)"
    )
    p.add_argument("--keypoint-epochs", type=int, default=100, help="keypoint-net epochs (default: 100, its recipe)")
    p.add_argument("--budget", type=float, default=420, help="seconds after which no step starts (default: 420)")
    p.add_argument("--out", help="also write the table to this file")
    p.add_argument("--logs", help="folder for every step's full output")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="STEP",
        help="leave out a step: tests, mnist, mnist-fast, digits, digits-cpu, keypoints, mnist-compile, mnist-long",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = find_accelerator()
    except ImportError as exc:
        print(
            f"gpu-check: error: {sys.executable} cannot import torch ({exc}); use the interpreter torchlab "
            "runs with (make gpu-check PY=...)",
            file=sys.stderr,
        )
        return 2
    if device is None:
        print(NO_ACCELERATOR)
        return 0
    import torch

    name, version = device_name(device), torch.__version__
    deadline = time.monotonic() + args.budget
    rows, failures = [], 0
    logs = Path(args.logs) if args.logs else None
    if logs:
        logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="torchlab-gpu-check-") as scratch:
        for i, step in enumerate(plan(args, device, scratch), start=1):
            left = deadline - time.monotonic()
            if step.name in args.skip:
                outcome = Outcome("skipped", note="--skip")
            elif step.skip:
                outcome = Outcome("skipped", note=step.skip)
            elif left < MIN_STEP_SECONDS:
                outcome = Outcome("skipped", note=f"time budget of {args.budget:.0f} s used up")
            else:
                print(f"gpu-check: {step.name} ({step.shown}), at most {min(step.cap, left):.0f} s", file=sys.stderr)
                outcome = run_step(step.argv, min(step.cap, left), child_env())
                print(f"gpu-check: {step.name} {outcome.status} in {outcome.seconds:.0f} s", file=sys.stderr)
            failures += outcome.status in ("failed", "timed out")
            if logs and outcome.status != "skipped":
                (logs / f"{i:02d}-{step.name}.log").write_text(f"$ python {' '.join(step.argv)}\n{outcome.output}")
            rows.append((step.shown, outcome_figure(step, outcome)))
    table = format_table(name, version, rows)
    print(table, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
