"""Mutation testing of torchlab's core with mutmut, one module at a time (see TESTING.md).

    python tools/mutation.py                                   # every core module, one after the other
    python tools/mutation.py torchlab/engine/early_stopping.py # one module (make mutation MODULE=...)
    python tools/mutation.py --list                            # the core modules and the tests each one runs
    python tools/mutation.py --again torchlab/engine/trainer.py
                                                               # after adding tests: rerun only the mutants
                                                               # the last run of that module did not kill

Each module runs in its own folder, build/mutation/<module>/, holding a copy of torchlab/ and
tests/ and a pyproject.toml whose [tool.mutmut] section is the project's plus two lines: mutate
only this module, and run only the tests that exercise it (MODULES below). mutmut then makes its
mutants/ folder there, so runs of different modules never share state and the work tree stays
untouched. mutmut runs under `nice -n 10`, one torch thread per test process, and
MUTATION_JOBS (default 2) mutants at a time.

The summary counts a mutant as killed when a test failed or timed out on it (mutmut's own
score), and leaves out of the denominator the equivalent mutants listed in TESTING.md's table
(names in backquotes): those cannot change behavior, so no test can kill them. Mutants listed
there with a reason starting "CUDA:" change only what happens on a CUDA device; the second rate
leaves them out too, and that rate must reach TARGET, or the script exits 1. Inspect one mutant with `cd build/mutation/<module> && mutmut show NAME`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.90
PROGRESS_TESTS = [f"tests/reporting/test_progress.py::{name}" for name in (  # not the 45-second real-terminal one
    "test_mode_follows_the_stream_the_bar_writes_to", "test_not_a_terminal_gets_one_plain_line_per_epoch",
    "test_auto_is_silent_when_not_a_terminal_and_false_is_silent_everywhere",
    "test_terminal_gets_a_per_batch_bar_with_total_and_a_kept_line_per_epoch", "test_early_stopping_is_reported",
    "test_loss_is_read_off_the_device_rarely")]
# the Trainer's tests, which every engine module of the loop runs: values (one process, DDP logic included:
# the 2-rank run serves distributed.py), resume, and the Trainer's behavior
TRAINER_TESTS = ["tests/engine/test_core_values.py", "tests/engine/test_resume_state.py", "tests/engine/test_trainer.py"]
MNIST_TESTS = [f"tests/tasks/mnist/test_mnist.py::{name}" for name in (
    "test_read_idx_raw_and_gzip", "test_read_idx_errors_name_the_file", "test_find_file_layouts_and_missing",
    "test_load_mnist_shapes_limit_and_mismatch", "test_binary_subset_targets",
    "test_random_affine_keeps_shape_and_background")]
KEYPOINT_TESTS = ["tests/tasks/keypoints/test_keypoints_values.py", "tests/data/test_keypoints_data.py"]
BATCHER_SHARDS = "tests/runtime/test_ddp.py::test_tensor_batcher_shards_cover_the_data"
# module -> the tests that exercise it (files or pytest node ids); fast ones, no long trainings
MODULES: dict[str, list[str]] = {
    # the Trainer: the loop, and its collaborators, one module each
    "torchlab/engine/trainer.py": [*TRAINER_TESTS, "tests/engine/test_totals.py", "tests/reporting/test_tensorboard.py",
                                   *PROGRESS_TESTS],
    "torchlab/engine/totals.py": ["tests/engine/test_totals.py", *TRAINER_TESTS],
    "torchlab/engine/resume.py": [*TRAINER_TESTS],
    "torchlab/engine/checkpoint_writer.py": [*TRAINER_TESTS, "tests/cli/test_runs.py"],
    "torchlab/engine/early_stopping.py": [*TRAINER_TESTS],
    "torchlab/engine/checkpoint.py": [*TRAINER_TESTS, "tests/engine/test_checkpoint.py",
                                      # not test_no_code_path_loads_unsafely: it greps the source, which holds every mutant
                                      "tests/engine/test_safe_loading.py", "--deselect",
                                      "tests/engine/test_safe_loading.py::test_no_code_path_loads_unsafely",
                                      "tests/cli/test_hostile_input.py::test_random_bytes_as_checkpoint",
                                      "tests/cli/test_hostile_input.py::test_corrupted_checkpoint_loads_or_fails_cleanly",
                                      "tests/cli/test_hostile_input.py::test_checkpoint_with_wrong_types_inside"],
    "torchlab/engine/metrics.py": ["tests/engine/test_core_values.py", "tests/engine/test_trainer.py",
                                   "tests/engine/test_totals.py"],
    "torchlab/data/batcher.py": ["tests/data/test_data_values.py", "tests/engine/test_resume_state.py",
                                 "tests/engine/test_trainer.py", BATCHER_SHARDS],
    "torchlab/runtime/distributed.py": ["tests/runtime/test_ddp_control.py", "tests/data/test_data_values.py",
                                        BATCHER_SHARDS],
    "torchlab/data/keypoints_augment.py": KEYPOINT_TESTS,
    "torchlab/data/keypoints.py": KEYPOINT_TESTS,
    "torchlab/data/mnist.py": ["tests/data/test_data_values.py", *MNIST_TESTS],
}
CAUGHT = {"killed", "timeout"}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def equivalents() -> dict[str, str]:
    """Mutant name -> reason, from the rows of TESTING.md's mutant tables (equivalent, and CUDA-only
    ones, whose reason starts with "CUDA:")."""
    table: dict[str, str] = {}
    testing = ROOT / "TESTING.md"
    if testing.exists():
        for line in testing.read_text().splitlines():
            found = re.match(r"\|\s*`([^`]+__mutmut_\d+)`\s*\|\s*(.*?)\s*\|\s*$", line)
            if found:
                table[found.group(1)] = found.group(2)
    return table


def prepare(module: str) -> Path:
    """A fresh build/mutation/<module>/ with torchlab/, tests/ and this module's mutmut settings."""
    work = work_folder(module)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "torchlab", work / "torchlab", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    settings = dict(project["tool"]["mutmut"])
    settings["only_mutate"] = [module]
    settings["pytest_add_cli_args_test_selection"] = MODULES[module]
    lines = ["[tool.mutmut]"] + [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    pytest_settings = project["tool"]["pytest"]["ini_options"]
    lines += ["", "[tool.pytest.ini_options]"] + [f"{k} = {toml_value(v)}" for k, v in pytest_settings.items()]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return work


def statuses(work: Path) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                         capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"^\s+(\S+__mutmut_\d+): (.+)$", out, flags=re.M))


def work_folder(module: str) -> Path:
    return ROOT / "build" / "mutation" / module.removesuffix(".py").replace("/", ".")


def refresh_tests(module: str) -> tuple[Path, list[str]]:
    """For --again: the last run's folder with today's tests, and the mutants it did not kill."""
    work = work_folder(module)
    if not (work / "summary.json").exists():
        raise SystemExit(f"no earlier run of {module} to continue; run it without --again first")
    if (work / module).read_bytes() != (ROOT / module).read_bytes():
        raise SystemExit(f"{module} changed since its last run: its mutants are stale; run it without --again")
    shutil.rmtree(work / "tests")
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # which tests reach which function: collected afresh, since edited tests may now reach new ones
    (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    return work, [name for name, status in statuses(work).items() if status not in CAUGHT]


def run_module(module: str, jobs: int, again: bool = False) -> dict:
    names: list[str] = []
    if again:
        work, names = refresh_tests(module)
    else:
        work = prepare(module)
    if names or not again:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        cmd = ["nice", "-n", "10", sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *names]
        proc = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:  # e.g. a selected test fails without any mutant: say so, go on with the next
            print(f"mutmut failed on {module} (exit {proc.returncode}); to see why: "
                  f"cd {work.relative_to(ROOT)} && mutmut run\n{proc.stderr[-2000:]}", file=sys.stderr)
            return {"module": module, "mutants": 0, "equivalent": 0, "killed": 0, "cuda_only": 0, "survived": [],
                    "other": {}, "kill_rate": 0.0, "kill_rate_cpu": 0.0, "equivalent_still_killed": []}
    found = statuses(work)
    listed = equivalents()
    equivalent = sorted(name for name in found if name in listed and not listed[name].startswith("CUDA:"))
    cuda = sorted(name for name in found if name in listed and listed[name].startswith("CUDA:"))
    counted = {name: status for name, status in found.items() if name not in equivalent}
    killed = sum(status in CAUGHT for status in counted.values())
    on_cpu = len(counted) - sum(found[n] not in CAUGHT for n in cuda)
    summary = {
        "module": module, "mutants": len(found), "equivalent": len(equivalent), "killed": killed,
        "cuda_only": len(cuda),
        "survived": sorted(n for n, s in counted.items() if s == "survived" and n not in cuda),
        "other": {n: s for n, s in counted.items() if s not in CAUGHT and s != "survived"},
        "kill_rate": killed / len(counted) if counted else 1.0,
        "kill_rate_cpu": killed / on_cpu if on_cpu else 1.0,
        "equivalent_still_killed": sorted(n for n in equivalent + cuda if found[n] in CAUGHT),
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def report(summary: dict) -> None:
    s = summary
    print(f"{s['module']}: {s['killed']}/{s['mutants'] - s['equivalent']} killed = {100 * s['kill_rate']:.1f}% "
          f"({s['mutants']} mutants, {s['equivalent']} equivalent left out); "
          f"{100 * s['kill_rate_cpu']:.1f}% without the {s['cuda_only']} that only a CUDA device can show")
    for name in s["survived"]:
        print(f"    survived: {name}")
    for name, status in s["other"].items():
        print(f"    {status}: {name}")
    for name in s["equivalent_still_killed"]:
        print(f"    listed as equivalent but killed (drop it from TESTING.md): {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="core modules to mutate (default: all of them)")
    parser.add_argument("--list", action="store_true", help="print the core modules and their tests, and exit")
    parser.add_argument("--again", action="store_true",
                        help="keep the last run's mutants and rerun only those it did not kill, with today's tests")
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in MODULES.items():
            print(f"{module}: {' '.join(tests)}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        print(f"not a core module: {', '.join(unknown)}; choose from {', '.join(MODULES)}", file=sys.stderr)
        return 2
    jobs = int(os.environ.get("MUTATION_JOBS", "2"))
    results = []
    for module in args.modules or list(MODULES):
        results.append(run_module(module, jobs, args.again))
        report(results[-1])
    if len(results) > 1:
        print("\nmodule                                 killed     rate  rate without CUDA-only")
        for s in results:
            print(f"{s['module']:<38} {s['killed']:>4}/{s['mutants'] - s['equivalent']:<4} {100 * s['kill_rate']:5.1f}%"
                  f"  {100 * s['kill_rate_cpu']:5.1f}%")
    return 0 if all(s["kill_rate_cpu"] >= TARGET for s in results) else 1


if __name__ == "__main__":
    sys.exit(main())
