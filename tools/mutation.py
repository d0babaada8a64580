"""Mutation testing of the whole torchlab package, one module at a time, with two tools (see TESTING.md).

    python tools/mutation.py                                   # every module with code, one after the other
    python tools/mutation.py torchlab/engine/early_stopping.py # one module (make mutation MODULE=...)
    python tools/mutation.py --group engine                    # one group (make mutation GROUP=engine)
    python tools/mutation.py --list                            # the modules, their group and the tests each runs
    python tools/mutation.py --tool cosmic-ray torchlab/config.py
                                                               # one tool only (make mutation TOOL=cosmic-ray)
    python tools/mutation.py --again torchlab/engine/trainer.py
                                                               # after adding tests: rerun only the mutants
                                                               # the last run of that module did not kill
    python tools/mutation.py --summary                         # run nothing: count the last results again

The modules are every .py file under torchlab/ that defines a function, a class or a constant
(`modules()`; an __init__.py of imports only is left out). Each runs only the tests that exercise
it: the explicit list in MODULES, else the tests of the mirrored folder (torchlab/engine/x.py ->
tests/engine/, torchlab/tasks/mnist/train.py -> tests/tasks/mnist/, torchlab/models/mnist.py ->
tests/models/ and tests/tasks/mnist/) without the serial lane's files (tests/conftest.py
SERIAL_LANE), the tests marked slow and every test that starts a process (torchrun, a `python`
child, SIGKILL): `tests_for()`.

1. mutmut. Each module runs in its own folder, build/mutation/<module>/, holding a copy of
   torchlab/ and tests/ and a pyproject.toml whose [tool.mutmut] section is the project's plus two
   lines: mutate only this module, and run only its tests. mutmut makes its mutants/ folder there,
   so runs of different modules never share state and the work tree stays untouched. mutmut
   mutates the bodies of functions and methods only: not module constants, class bodies (a
   config's defaults, its check= rules and resume_safe marks), decorated functions, decorators or
   default arguments that are not plain values.
2. cosmic-ray, for exactly that: its settings are [tool.cosmic-ray] in pyproject.toml, from which
   this script writes build/mutation/<module>/cosmic-ray.toml (the module, the same tests, a time
   limit of `timeout-factor` times the unmutated run, at least `timeout`), then runs
   `cosmic-ray init` and `cosmic-ray exec` in that folder (cosmic-ray edits the copy's file in
   place and puts it back after each mutant). With `scope = "outside-mutmut"` the mutants that
   fall inside a body mutmut already mutates are marked skipped before exec, so cosmic-ray runs
   only module-level statements, class bodies, decorators, decorated functions and def lines
   (defaults); type annotations are skipped (neither tool mutates them). `scope = "module"`
   runs every cosmic-ray mutant of the module.

Both tools run under `nice -n 10` (start the script under `nice -n 19` on a shared machine), one
torch thread per test process; mutmut runs MUTATION_JOBS (default 2) mutants at a time, cosmic-ray
one. A mutant counts as killed when a test failed or timed out on it. Mutants listed in TESTING.md's
table of equivalent mutants (names in backquotes: mutmut's `module.x_function__mutmut_N`,
cosmic-ray's `cr:module:definition:Operator:N`) are left out of the denominator; those whose reason
starts with "CUDA:" are left out of the second rate too, which must reach TARGET, or the script
exits 1. Each module's numbers go to build/mutation/<module>/summary.json; every run then rewrites
build/mutation/summary.json and build/mutation/summary.md (one table row per module and tool, from
every module's latest summary). Inspect a mutmut mutant with `cd build/mutation/<module> && mutmut
show NAME`, a cosmic-ray one with `cr-report cosmic-ray.sqlite --show-diff`.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import fnmatch
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.95
TASKS = ("digits", "keypoints", "mnist", "patch", "ring")
# test files that start processes or hold the timing-sensitive lane: never picked by the mirror rule
PROCESS_WORDS = ("run_torchlab", "subprocess", "torchrun", "SIGKILL", "Popen", "sys.executable", "mp.spawn")
PROGRESS_TESTS = [
    f"tests/reporting/test_progress.py::{name}"
    for name in (  # not the 45-second real-terminal one
        "test_mode_follows_the_stream_the_bar_writes_to",
        "test_not_a_terminal_gets_one_plain_line_per_epoch",
        "test_auto_is_silent_when_not_a_terminal_and_false_is_silent_everywhere",
        "test_terminal_gets_a_per_batch_bar_with_total_and_a_kept_line_per_epoch",
        "test_early_stopping_is_reported",
        "test_loss_is_read_off_the_device_rarely",
    )
]
# the Trainer's tests, which every engine module of the loop runs: values (one process, DDP logic included:
# the 2-rank run serves distributed.py), resume, and the Trainer's behavior
TRAINER_TESTS = [
    "tests/engine/test_core_values.py",
    "tests/engine/test_resume_state.py",
    "tests/engine/test_trainer.py",
    "tests/engine/test_trainer_pinned.py",
    "tests/engine/test_stop_messages.py",
]
MNIST_TESTS = [
    f"tests/tasks/mnist/test_mnist.py::{name}"
    for name in (
        "test_read_idx_raw_and_gzip",
        "test_read_idx_errors_name_the_file",
        "test_find_file_layouts_and_missing",
        "test_load_mnist_shapes_limit_and_mismatch",
        "test_binary_subset_targets",
        "test_random_affine_keeps_shape_and_background",
    )
]
KEYPOINT_TESTS = ["tests/tasks/keypoints/test_keypoints_values.py", "tests/data/test_keypoints_data.py"]
BATCHER_SHARDS = "tests/runtime/test_ddp.py::test_tensor_batcher_shards_cover_the_data"
# the promises of docs/guarantees.md ("What torchlab guarantees"), one file per topic
# (fast: tiny runs, API and CLI in-process)
PROMISES_CHECKPOINT = "tests/engine/test_promises_checkpoint.py"
PROMISES_RESUME = "tests/engine/test_promises_resume.py"
PROMISES_FOLDER = "tests/runtime/test_promises_output_folder.py"
PROMISES_CONFIG = "tests/tasks/test_promises_config.py"
# module -> the tests that exercise it (files or pytest node ids), where the mirror rule (tests_for) is wrong
# or too slow; fast ones, no long trainings
MODULES: dict[str, list[str]] = {
    # the Trainer: the loop, and its collaborators, one module each
    "torchlab/engine/trainer.py": [
        *TRAINER_TESTS,
        "tests/engine/test_time_budget.py",
        "tests/engine/test_totals.py",
        # issue 21's options: accumulation, dry run, the stopping and time fields
        "tests/engine/test_accumulate.py",
        "tests/engine/test_dry_run.py",
        "tests/engine/test_train_options.py",
        "tests/engine/test_callbacks.py",
        "tests/engine/test_from_config.py",
        "tests/engine/test_trainer_pinned_loop.py",
        "--deselect",
        "tests/engine/test_accumulate.py::test_torchrun_needs_batches_with_a_length_to_accumulate",
        "tests/reporting/test_tensorboard.py",
        *PROGRESS_TESTS,
    ],
    # the loop's collaborators (one job a module since issue 35): the trainer's tests reach each of them
    **{
        f"torchlab/engine/{name}.py": [
            *TRAINER_TESTS,
            "tests/engine/test_time_budget.py",
            "tests/engine/test_accumulate.py",
            "tests/engine/test_dry_run.py",
            "tests/engine/test_train_options.py",
            "tests/engine/test_callbacks.py",
            "tests/engine/test_from_config.py",
            "--deselect",
            "tests/engine/test_accumulate.py::test_torchrun_needs_batches_with_a_length_to_accumulate",
            "tests/reporting/test_tensorboard.py",
            *PROGRESS_TESTS,
        ]
        for name in ("batches", "budget", "callbacks", "dry_run", "finite_loss", "from_config", "result")
    },
    "torchlab/engine/totals.py": ["tests/engine/test_totals.py", *TRAINER_TESTS],
    "torchlab/engine/resume.py": [*TRAINER_TESTS, PROMISES_RESUME, "tests/engine/test_time_budget.py"],
    "torchlab/engine/checkpoint_writer.py": [*TRAINER_TESTS, "tests/cli/test_runs.py"],
    "torchlab/engine/early_stopping.py": [
        *TRAINER_TESTS,
        "tests/engine/test_stopping_rules.py",
        "tests/engine/test_early_stopping_pinned.py",
    ],
    "torchlab/engine/checkpoint.py": [
        *TRAINER_TESTS,
        "tests/engine/test_checkpoint.py",
        "tests/engine/test_checkpoint_pinned_digest.py",
        PROMISES_CHECKPOINT,
        "tests/engine/test_time_budget.py",
        # not test_no_code_path_loads_unsafely: it greps the source, which holds every mutant
        "tests/engine/test_safe_loading.py",
        "--deselect",
        "tests/engine/test_safe_loading.py::test_no_code_path_loads_unsafely",
        "tests/cli/test_hostile_input.py::test_random_bytes_as_checkpoint",
        "tests/cli/test_hostile_input.py::test_corrupted_checkpoint_loads_or_fails_cleanly",
        "tests/cli/test_hostile_input.py::test_checkpoint_with_wrong_types_inside",
    ],
    "torchlab/engine/metrics.py": [
        "tests/engine/test_core_values.py",
        "tests/engine/test_trainer.py",
        "tests/engine/test_totals.py",
    ],
    "torchlab/data/batcher.py": [
        "tests/data/test_data_values.py",
        "tests/engine/test_resume_state.py",
        "tests/engine/test_trainer.py",
        BATCHER_SHARDS,
    ],
    "torchlab/runtime/distributed.py": [
        "tests/runtime/test_ddp_control.py",
        "tests/data/test_data_values.py",
        BATCHER_SHARDS,
    ],
    "torchlab/data/keypoints_augment.py": KEYPOINT_TESTS,
    "torchlab/data/keypoints.py": KEYPOINT_TESTS,
    "torchlab/data/mnist.py": ["tests/data/test_data_values.py", *MNIST_TESTS],
    # the promises: the folder rule, the configs' declarations and the resume guard
    "torchlab/runtime/output_folder.py": [PROMISES_FOLDER],
    # atomic writes: tested through engine/checkpoint.py, which re-exports them
    "torchlab/runtime/files.py": [
        "tests/engine/test_core_values.py",
        "tests/engine/test_checkpoint.py",
        PROMISES_CHECKPOINT,
    ],
    "torchlab/config.py": [
        PROMISES_CONFIG,
        PROMISES_RESUME,
        "tests/engine/test_train_options.py",
        # patch's recipes are the ones that leave weight_decay at TrainConfig's default
        "tests/tasks/patch/test_patch.py::test_scaled_descent_matches_least_squares_and_recovers_slopes",
    ],
    "torchlab/api.py": [PROMISES_RESUME, PROMISES_FOLDER, PROMISES_CONFIG, "tests/test_api.py"],
    "torchlab/__init__.py": ["tests/test_api.py"],
    "torchlab/version.py": [
        "tests/test_layout.py::test_the_version_is_written_once_in_version_py",
        "tests/engine/test_core_values.py::test_plain_and_unwrap",
    ],
    "torchlab/errors.py": [PROMISES_CONFIG, PROMISES_CHECKPOINT, "tests/cli/test_hostile_input.py"],
    # the registries: by name from the API and the CLI
    "torchlab/tasks/__init__.py": ["tests/tasks/test_run_result.py", "tests/test_api.py"],
    "torchlab/models/__init__.py": ["tests/models/test_keypoints_models.py", "tests/test_export.py", "-m", "not slow"],
    "torchlab/reporting/progress.py": PROGRESS_TESTS,
}
# cosmic-ray runs a module's whole test list in a new process for every mutant (mutmut runs only the tests
# that reach the mutated function): where that list is long, cosmic-ray runs these (the promises and the
# module's own tests) instead
COSMIC_TESTS: dict[str, list[str]] = {
    "torchlab/engine/checkpoint.py": [
        PROMISES_CHECKPOINT,
        "tests/engine/test_checkpoint.py",
        "tests/engine/test_safe_loading.py",
        "--deselect",
        "tests/engine/test_safe_loading.py::test_no_code_path_loads_unsafely",
    ],
    "torchlab/engine/resume.py": [
        PROMISES_RESUME,
        "tests/engine/test_resume_state.py",
        "tests/engine/test_time_budget.py",
    ],
}
CAUGHT = {"killed", "timeout"}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


# ---- which modules, which tests


@functools.cache
def defines_something(path: Path) -> bool:
    """Whether a source file defines a function, a class or a constant (imports and a docstring do not count)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign))
        for node in ast.walk(tree)
    )


def modules() -> list[str]:
    """Every module of torchlab/ with code in it, as paths relative to the repository, sorted."""
    return sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "torchlab").rglob("*.py")
        if "__pycache__" not in p.parts and defines_something(p)
    )


def group_of(module: str) -> str:
    """engine, runtime, data, models, tasks, cli, ... (the package under torchlab/); the top-level files:
    config (config.py, errors.py: configs and their validation) or api (the rest)."""
    parts = Path(module).parts[1:]
    if len(parts) > 1:
        return parts[0]
    return "config" if parts[0] in ("config.py", "errors.py") else "api"


@functools.cache
def serial_lane() -> set[str]:
    """tests/conftest.py's SERIAL_LANE (read from its source: importing conftest imports torch)."""
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SERIAL_LANE" for t in node.targets):
            return {f"tests/{name}" for name in ast.literal_eval(node.value)}
    return set()


@functools.cache
def process_tests(test_file: Path) -> list[str]:
    """The node ids of the tests in a file whose source starts a process (PROCESS_WORDS)."""
    source = test_file.read_text()
    tree = ast.parse(source)
    rel = test_file.relative_to(ROOT).as_posix()
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            body = ast.get_source_segment(source, node) or ""
            if any(word in body for word in PROCESS_WORDS):
                found.append(f"{rel}::{node.name}")
    return found


def mirrored_tests(module: str) -> list[str]:
    """The test files of the folder that mirrors the module's (and of the task it is named after)."""
    parts = Path(module).with_suffix("").parts[1:]  # ("engine", "checkpoint"), ("tasks", "mnist", "train"), ("api",)
    folders: list[Path] = []
    files: list[Path] = []
    if len(parts) == 1:
        files.append(ROOT / "tests" / f"test_{parts[0]}.py")
    else:
        folder = ROOT / "tests" / Path(*parts[:-1])
        while folder != ROOT / "tests" and not folder.is_dir():
            folder = folder.parent
        if folder != ROOT / "tests":
            folders.append(folder)
        if parts[0] in ("data", "models"):  # data/mnist_image.py, models/digits.py: the task's own tests too
            task = next((t for t in TASKS if parts[-1].startswith(t)), "keypoints" if "faces" in parts[-1] else None)
            if task:
                folders.append(ROOT / "tests" / "tasks" / task)
    found = [f for f in files if f.exists()]
    for folder in folders:
        found += sorted(folder.glob("test_*.py"))
    return sorted({f.relative_to(ROOT).as_posix(): f for f in found}.values())


def tests_for(module: str) -> list[str]:
    """The pytest arguments that select the module's tests: MODULES' list, else the mirrored test files
    without the serial lane, the slow tests and those that start processes."""
    if module in MODULES:
        return MODULES[module]
    lane = serial_lane()
    files = [f for f in mirrored_tests(module) if f.relative_to(ROOT).as_posix() not in lane]
    if not files:
        return []
    deselect = [arg for f in files for node in process_tests(f) for arg in ("--deselect", node)]
    return [f.relative_to(ROOT).as_posix() for f in files] + ["-m", "not slow"] + deselect


# ---- the equivalent mutants of TESTING.md


def equivalents() -> dict[str, str]:
    """Mutant name -> reason, from the rows of TESTING.md's mutant tables (equivalent, and CUDA-only
    ones, whose reason starts with "CUDA:"); both tools' names."""
    table: dict[str, str] = {}
    testing = ROOT / "TESTING.md"
    if testing.exists():
        for line in testing.read_text().splitlines():
            found = re.match(r"\|\s*`([^`]+__mutmut_\d+|cr:[^`]+)`\s*\|\s*(.*?)\s*\|\s*$", line)
            if found:
                table[found.group(1)] = found.group(2)
    return table


def rates(found: dict[str, str], listed: dict[str, str]) -> dict:
    """The counts and the two rates of one tool's statuses (name -> status), as mutmut's summary has them."""
    equivalent = sorted(n for n in found if n in listed and not listed[n].startswith("CUDA:"))
    cuda = sorted(n for n in found if n in listed and listed[n].startswith("CUDA:"))
    counted = {n: s for n, s in found.items() if n not in equivalent}
    killed = sum(s in CAUGHT for s in counted.values())
    on_cpu = len(counted) - sum(found[n] not in CAUGHT for n in cuda)
    return {
        "mutants": len(found),
        "equivalent": len(equivalent),
        "killed": killed,
        "cuda_only": len(cuda),
        "survived": sorted(n for n, s in counted.items() if s == "survived" and n not in cuda),
        "other": {n: s for n, s in counted.items() if s not in CAUGHT and s != "survived"},
        "kill_rate": killed / len(counted) if counted else 1.0,
        "kill_rate_cpu": killed / on_cpu if on_cpu else 1.0,
        "equivalent_still_killed": sorted(n for n in equivalent + cuda if found[n] in CAUGHT),
    }


# ---- mutmut


def work_folder(module: str) -> Path:
    return ROOT / "build" / "mutation" / module.removesuffix(".py").replace("/", ".")


def copy_tree(work: Path, name: str) -> None:
    if (work / name).exists():
        shutil.rmtree(work / name)
    shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def prepare(module: str) -> Path:
    """A fresh build/mutation/<module>/ with torchlab/, tests/ and this module's mutmut settings
    (cosmic-ray's session and the summary are kept: a mutmut run does not undo a cosmic-ray one)."""
    work = work_folder(module)
    if work.exists():
        for name in ("mutants", "torchlab", "tests"):
            shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    copy_tree(work, "torchlab")
    copy_tree(work, "tests")
    write_mutmut_settings(module, work)
    return work


def write_mutmut_settings(module: str, work: Path) -> None:
    """work/pyproject.toml: the project's [tool.mutmut] and pytest settings, this module and its tests."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    settings = dict(project["tool"]["mutmut"])
    settings["only_mutate"] = [module]
    settings["pytest_add_cli_args_test_selection"] = tests_for(module)
    lines = ["[tool.mutmut]"] + [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    pytest_settings = project["tool"]["pytest"]["ini_options"]
    lines += ["", "[tool.pytest.ini_options]"] + [f"{k} = {toml_value(v)}" for k, v in pytest_settings.items()]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")


def statuses(work: Path) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(re.findall(r"^\s+(\S+__mutmut_\d+): (.+)$", out, flags=re.M))


def refresh_tests(module: str) -> tuple[Path, list[str]]:
    """For --again: the last run's folder with today's tests, and the mutants it did not kill."""
    work = work_folder(module)
    if not (work / "summary.json").exists() or not (work / "mutants").exists():
        raise SystemExit(f"no earlier mutmut run of {module} to continue; run it without --again first")
    if (work / module).read_bytes() != (ROOT / module).read_bytes():
        raise SystemExit(f"{module} changed since its last run: its mutants are stale; run it without --again")
    copy_tree(work, "tests")
    write_mutmut_settings(module, work)  # today's test list
    # which tests reach which function: collected afresh, since edited tests may now reach new ones
    (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    at_import = import_time_functions((ROOT / module).read_text())
    dotted = module.removesuffix(".py").replace("/", ".")
    return work, [
        name
        for name, status in statuses(work).items()
        if status not in CAUGHT and not any(name.startswith(f"{dotted}.x_{f}__mutmut_") for f in at_import)
    ]


def test_env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def mutmut_summary(module: str, work: Path, only: list[str]) -> dict:
    """The rates of the mutmut results in `work` (TESTING.md's equivalents as they are now)."""
    found = statuses(work)
    if only:
        found = {n: s for n, s in found.items() if any(fnmatch.fnmatch(n, p) for p in only)}
    # mutants of functions that run only while the module is imported: left to cosmic-ray
    at_import = import_time_functions((ROOT / module).read_text())
    dotted = module.removesuffix(".py").replace("/", ".")
    left = sorted(n for n in found if any(n.startswith(f"{dotted}.x_{f}__mutmut_") for f in at_import))
    found = {n: s for n, s in found.items() if n not in left}
    return {
        **rates(found, equivalents()),
        "import_time": len(left),
        "import_time_functions": sorted(at_import),
        **({"only": list(only)} if only else {}),
    }


def run_mutmut(module: str, work: Path, jobs: int, names: list[str], again: bool, only: list[str]) -> dict:
    if only:  # mutmut's own filter: fnmatch patterns of mutant names
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in only)] if again else list(only)
    if names or not again:
        cmd = ["nice", "-n", "10", sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *names]
        proc = subprocess.run(
            cmd, cwd=work, env=test_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if proc.returncode != 0:  # e.g. a selected test fails without any mutant: say so, go on with the next
            print(
                f"mutmut failed on {module} (exit {proc.returncode}); to see why: "
                f"cd {work.relative_to(ROOT)} && mutmut run\n{proc.stderr[-2000:]}",
                file=sys.stderr,
            )
            return {**rates({}, {}), "failed": f"mutmut exit {proc.returncode}"}
    return mutmut_summary(module, work, only)


# ---- cosmic-ray


def import_time_functions(source: str) -> set[str]:
    """The module-level functions the module itself calls while it is imported (in a module-level
    statement or a class body: `check=whole(1)` in a config). mutmut imports the module once, before
    it switches to a mutant, so their mutants never run under it; cosmic-ray imports afresh for each."""
    tree = ast.parse(source)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    called: set[str] = set()
    pending = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending += node.decorator_list if not isinstance(node, ast.Lambda) else []
            pending += [d for d in getattr(node.args, "defaults", []) + node.args.kw_defaults if d is not None]
            continue  # a body runs when called, not when imported
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
            called.add(node.func.id)
        pending += list(ast.iter_child_nodes(node))
    return called


def mutmut_reach(source: str) -> list[tuple[int, int]]:
    """The line spans mutmut mutates and can observe: the bodies of module-level functions and of the
    methods of module-level classes, undecorated or only @staticmethod/@classmethod (mutmut 3's rule),
    except the functions the module calls while it is imported (import_time_functions)."""
    tree = ast.parse(source)
    at_import = import_time_functions(source)

    def plain(fn: ast.AST) -> bool:
        decorators = fn.decorator_list
        return not decorators or (
            len(decorators) == 1
            and isinstance(decorators[0], ast.Name)
            and decorators[0].id in ("staticmethod", "classmethod")
        )

    spans = []
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        for fn in members:
            if isinstance(fn, functions) and plain(fn) and not (fn in tree.body and fn.name in at_import):
                spans.append((fn.body[0].lineno, fn.end_lineno))
    return spans


def annotations(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The (start, end) positions (line, column) of every type annotation."""
    found = []
    for node in ast.walk(ast.parse(source)):
        notes = []
        if isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        elif isinstance(node, ast.arg) and node.annotation is not None:
            notes.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            notes.append(node.returns)
        found += [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in notes]
    return found


def cosmic_settings() -> dict:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cosmic-ray"])


def cosmic_tests(module: str) -> list[str]:
    return COSMIC_TESTS.get(module) or tests_for(module)


def cosmic_test_command(module: str, settings: dict) -> str:
    return shlex.join([sys.executable, "-m", "pytest", *settings.get("pytest-args", []), *cosmic_tests(module)])


def write_cosmic_config(module: str, work: Path, timeout: float, settings: dict) -> Path:
    config = {
        "module-path": module,
        "timeout": timeout,
        "excluded-modules": [],
        "test-command": cosmic_test_command(module, settings),
    }
    lines = ["[cosmic-ray]"] + [f"{key} = {toml_value(value)}" for key, value in config.items()]
    lines += ["", "[cosmic-ray.distributor]", 'name = "local"']
    path = work / "cosmic-ray.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cosmic_names(items) -> dict[str, object]:
    """A stable name for each cosmic-ray work item: cr:<module>:<definition>:<operator>:<n>, n counting that
    operator's mutations within the definition (like mutmut's numbering within a function)."""
    named: dict[str, object] = {}
    counts: dict[tuple, int] = {}
    for item in sorted(
        items, key=lambda it: (it.mutations[0].start_pos, it.mutations[0].operator_name, it.mutations[0].occurrence)
    ):
        m = item.mutations[0]
        dotted = Path(m.module_path).with_suffix("").as_posix().replace("/", ".")
        key = (m.definition_name or "<module>", m.operator_name.removeprefix("core/"))
        counts[key] = counts.get(key, -1) + 1
        named[f"cr:{dotted}:{key[0]}:{key[1]}:{counts[key]}"] = item
    return named


def skip_reached(db_path: Path, module: str, scope: str, exclude: list[str]) -> tuple[int, int]:
    """Mark as skipped the work items mutmut already covers (scope "outside-mutmut"), those in type
    annotations and those of excluded operators; returns (kept, skipped)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    source = (ROOT / module).read_text()
    lines = source.splitlines()
    reach = mutmut_reach(source) if scope == "outside-mutmut" else []
    notes = annotations(source)
    excluded = re.compile("|".join(f"(?:{e})" for e in exclude)) if exclude else None
    skipped = []
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        items = list(db.pending_work_items)
        for item in items:
            m = item.mutations[0]
            line, _ = m.start_pos
            in_note = any(start <= tuple(m.start_pos) < end for start, end in notes)
            # cosmic-ray takes the bare `*` before keyword-only parameters for a multiplication
            after = lines[line - 1][m.start_pos[1] :]
            bare_star = "BinaryOperator_Mul_" in m.operator_name and re.match(r"\*\s*[,)]", after) is not None
            reached = any(a <= line <= b for a, b in reach)
            if in_note or bare_star or reached or (excluded and excluded.search(m.operator_name)):
                skipped.append(item.job_id)
        if skipped:
            db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    return len(items) - len(skipped), len(skipped)


def cosmic_results(db_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """name -> status (killed, survived, timeout, incompetent, pending) of every work item not skipped,
    and name -> the mutant's changed line (from its diff)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    found, diffs = {}, {}
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        results = {item.job_id: result for item, result in db.completed_work_items}
        for name, item in cosmic_names(list(db.work_items)).items():
            result = results.get(item.job_id)
            if result is not None and result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result is None:
                found[name] = "pending"
            elif result.test_outcome == TestOutcome.KILLED:
                found[name] = "timeout" if (result.output or "").strip() == "timeout" else "killed"
            elif result.test_outcome == TestOutcome.SURVIVED:
                found[name] = "survived"
            else:
                found[name] = str(result.test_outcome or result.worker_outcome)
            if result is not None and result.diff:
                plus = [
                    ln[1:].strip() for ln in result.diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")
                ]
                diffs[name] = f"line {item.mutations[0].start_pos[0]}: {plus[0] if plus else '(removed)'}"
    return found, diffs


def run_cosmic_ray(module: str, work: Path, again: bool) -> dict:
    settings = cosmic_settings()
    scope = settings.get("scope", "outside-mutmut")
    shutil.copy2(ROOT / module, work / module)  # an interrupted exec may have left a mutant in place
    db_path = work / "cosmic-ray.sqlite"
    command = cosmic_test_command(module, settings)
    if not cosmic_tests(module):
        print(f"cosmic-ray: no tests chosen for {module} (MODULES or the mirror rule)", file=sys.stderr)
        return {**rates({}, {}), "failed": "no tests", "scope": scope}
    start = time.monotonic()
    base = subprocess.run(
        ["nice", "-n", "10", *shlex.split(command)], cwd=work, env=test_env(), capture_output=True, text=True
    )
    baseline = time.monotonic() - start
    if base.returncode != 0:
        print(
            f"cosmic-ray: the tests of {module} fail without any mutant; to see why: cd "
            f"{work.relative_to(ROOT)} && {command}\n{base.stdout[-2000:]}",
            file=sys.stderr,
        )
        return {**rates({}, {}), "failed": f"tests fail unmutated (exit {base.returncode})", "scope": scope}
    timeout = max(float(settings.get("timeout", 60)), float(settings.get("timeout-factor", 3)) * baseline)
    config = write_cosmic_config(module, work, round(timeout, 1), settings)
    cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
    kept = skipped = 0
    if not (again and db_path.exists()):
        subprocess.run(
            [*cosmic, "init", "--force", config.name, db_path.name], cwd=work, check=True, stdout=subprocess.DEVNULL
        )
        kept, skipped = skip_reached(db_path, module, scope, list(settings.get("exclude-operators", [])))
    else:  # --again: run the survivors again
        from cosmic_ray.work_db import WorkDB, use_db

        with use_db(str(db_path), WorkDB.Mode.open) as db:
            survivors = [
                (it, r)
                for it, r in db.completed_work_items
                if r.test_outcome is not None and r.test_outcome.value == "survived"
            ]
        if survivors:  # forget their results: exec runs only pending work items
            import sqlite3

            with sqlite3.connect(db_path) as con:
                con.executemany("DELETE FROM work_results WHERE job_id = ?", [(it.job_id,) for it, _ in survivors])
    proc = subprocess.run(
        ["nice", "-n", "10", *cosmic, "exec", config.name, db_path.name],
        cwd=work,
        env=test_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    shutil.copy2(ROOT / module, work / module)
    if proc.returncode != 0:
        print(f"cosmic-ray exec failed on {module} (exit {proc.returncode})\n{proc.stderr[-2000:]}", file=sys.stderr)
    summary = cosmic_summary(db_path)
    summary.update(
        scope=scope,
        baseline_seconds=round(baseline, 1),
        timeout=round(timeout, 1),
        skipped_as_mutmuts=skipped if kept or skipped else None,
    )
    return summary


def cosmic_summary(db_path: Path) -> dict:
    found, diffs = cosmic_results(db_path)
    summary = rates(found, equivalents())
    summary["changes"] = {n: diffs.get(n, "") for n in summary["survived"]}
    return summary


def summarize_again(module: str) -> dict | None:
    """--summary: the last run's results counted again (after TESTING.md's table of equivalents changed)."""
    work = work_folder(module)
    if not (work / "summary.json").exists():
        return None
    summary = json.loads((work / "summary.json").read_text())
    if "mutmut" in summary and (work / "mutants").exists():
        summary["mutmut"] = {**summary["mutmut"], **mutmut_summary(module, work, summary["mutmut"].get("only", []))}
    if "cosmic-ray" in summary and (work / "cosmic-ray.sqlite").exists():
        summary["cosmic-ray"] = {**summary["cosmic-ray"], **cosmic_summary(work / "cosmic-ray.sqlite")}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


# ---- the summary


def git_commit(module: str) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", module)
    return f"{sha}+changes" if dirty else sha


def run_module(module: str, jobs: int, tools: list[str], again: bool = False, only: list[str] | None = None) -> dict:
    names: list[str] = []
    if again and "mutmut" in tools:
        work, names = refresh_tests(module)
    elif again:
        work = work_folder(module)
        copy_tree(work, "tests")
    elif "mutmut" in tools or not work_folder(module).exists():
        work = prepare(module)
    else:  # cosmic-ray alone: today's sources and tests, mutmut's results kept
        work = work_folder(module)
        copy_tree(work, "torchlab")
        copy_tree(work, "tests")
    old = json.loads((work / "summary.json").read_text()) if (work / "summary.json").exists() else {}
    summary = {
        "module": module,
        "group": group_of(module),
        "tests": tests_for(module),
        "cosmic_ray_tests": cosmic_tests(module),
        "date": datetime.date.today().isoformat(),
        "commit": git_commit(module),
    }
    for tool in ("mutmut", "cosmic-ray"):
        if tool not in tools:
            if tool in old:
                summary[tool] = old[tool]
            continue
        start = time.monotonic()
        if tool == "mutmut":
            result = run_mutmut(module, work, jobs, names, again, only or [])
        else:
            result = run_cosmic_ray(module, work, again)
        result["seconds"] = round(time.monotonic() - start)
        summary[tool] = result
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def report(summary: dict) -> None:
    for tool in ("mutmut", "cosmic-ray"):
        s = summary.get(tool)
        if not s:
            continue
        print(
            f"{summary['module']} [{tool}]: {s['killed']}/{s['mutants'] - s['equivalent']} killed = "
            f"{100 * s['kill_rate']:.1f}% ({s['mutants']} mutants, {s['equivalent']} equivalent left out); "
            f"{100 * s['kill_rate_cpu']:.1f}% without the {s['cuda_only']} that only a CUDA device can show; "
            f"{s.get('seconds', '?')} s" + (f"; FAILED: {s['failed']}" if s.get("failed") else "")
        )
        for name in s["survived"]:
            print(f"    survived: {name}" + (f"  ({s['changes'][name]})" if s.get("changes", {}).get(name) else ""))
        for name, status in s["other"].items():
            print(f"    {status}: {name}")
        for name in s["equivalent_still_killed"]:
            print(f"    listed as equivalent but killed (drop it from TESTING.md): {name}")


def write_overview() -> Path:
    """build/mutation/summary.json and summary.md: every module's latest summary, one row per module and tool."""
    base = ROOT / "build" / "mutation"
    rows = [json.loads(p.read_text()) for p in sorted(base.glob("*/summary.json"))]
    (base / "summary.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| module | tool | mutants | equivalent | killed | rate | rate without CUDA-only | time | date | commit |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        for tool in ("mutmut", "cosmic-ray"):
            s = row.get(tool)
            if s is None or "mutants" not in s:
                continue
            label = tool if tool == "mutmut" else f"cosmic-ray ({s.get('scope', '?')})"
            lines.append(
                f"| `{row['module']}` | {label} | {s['mutants']} | {s['equivalent']} | {s['killed']} | "
                f"{100 * s['kill_rate']:.1f}% | {100 * s['kill_rate_cpu']:.1f}% | {s.get('seconds', '?')} s | "
                f"{row.get('date', '?')} | {row.get('commit', '?')} |"
            )
    (base / "summary.md").write_text("\n".join(lines) + "\n")
    return base / "summary.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: all of them, or those of --group)")
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        help="the modules of a group (repeatable): "
        "engine, runtime, config, api, cli, tasks, data, models, gradients, lessons, reporting",
    )
    parser.add_argument("--tool", choices=("both", "mutmut", "cosmic-ray"), default="both")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="mutmut: only the mutants whose names match (fnmatch), e.g. 'torchlab.api.x_check_resume*'",
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="run nothing: count the last results again (TESTING.md's equivalents) and rewrite the table",
    )
    parser.add_argument("--list", action="store_true", help="print the modules, their group and tests, and exit")
    parser.add_argument(
        "--again",
        action="store_true",
        help="keep the last run's mutants and rerun only those it did not kill, with today's tests",
    )
    args = parser.parse_args(argv)
    every = modules()
    groups = sorted({group_of(m) for m in every})
    unknown = [m for m in args.modules if m not in every] + [g for g in args.group if g not in groups]
    if unknown:
        print(
            f"not a module with code or a group: {', '.join(unknown)}; groups: {', '.join(groups)} "
            "(--list shows the modules)",
            file=sys.stderr,
        )
        return 2
    chosen = [m for m in every if m in args.modules or group_of(m) in args.group] or every
    if args.list:
        for module in chosen:
            tests = tests_for(module)
            print(
                f"{module} [{group_of(module)}]: {shlex.join(tests) if tests else '(no tests: name them in MODULES)'}"
            )
        return 0
    if args.summary:
        for module in chosen:
            summary = summarize_again(module)
            if summary:
                report(summary)
        print(f"\nthe table of every module run so far: {write_overview().relative_to(ROOT)}")
        return 0
    tools = ["mutmut", "cosmic-ray"] if args.tool == "both" else [args.tool]
    jobs = int(os.environ.get("MUTATION_JOBS", "2"))
    results = []
    for module in chosen:
        results.append(run_module(module, jobs, tools, args.again, args.only))
        report(results[-1])
        write_overview()
    print(f"\nthe table of every module run so far: {write_overview().relative_to(ROOT)}")
    return 0 if all(r[t]["kill_rate_cpu"] >= TARGET for r in results for t in tools) else 1


if __name__ == "__main__":
    sys.exit(main())
