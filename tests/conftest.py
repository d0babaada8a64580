"""Shared test helpers: run the CLI in-process or in a fresh process, and a tiny classification set.

Also how the suite runs in parallel (`make test` uses pytest-xdist): each worker process keeps
torch to one thread (two workers share two cores), children inherit OMP_NUM_THREADS=1, and the
tests whose timing matters (torchrun launches, terminal progress, folder locks, SIGKILL, time
limits) share one xdist group, so they run one after another on one worker. The costly fixtures those
files and ONE_WORKER_FILES share (a torchrun launch, trained runs) are session-scoped: a worker that
interleaves other tests between a file's tests still makes each fixture once.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
TESTS = ROOT / "tests"
TEST_FIGURE_DPI = 80  # figures in tests are checked for what they show, not for their resolution

# Test files (relative to tests/) whose timing matters: they run in one lane, one after another.
SERIAL_LANE = (
    "runtime/test_ddp.py",
    "runtime/test_ddp_control.py",
    "runtime/test_output_folder.py",
    "reporting/test_progress.py",
    "engine/test_crash_resume.py",
    "tools/test_gpu_check.py",
    "runtime/test_elastic.py",
    "runtime/test_two_nodes.py",
)

# Test files whose tests share one costly session fixture (a trained run per task, a keypoint-net run): each
# file's tests stay together on one worker, so the fixture is made once, not once per worker.
ONE_WORKER_FILES = (
    "tasks/keypoints/test_keypoints_task.py",
    "cli/test_hostile_input_runs.py",
    "search/test_study.py",
    "runtime/test_memory_budget.py",
    "engine/test_checkpoint_digest.py",
    "cli/test_fuzz_mutations.py",
    "tasks/test_task_names.py",
)

if os.environ.get("PYTEST_XDIST_WORKER"):  # one of `make test`'s parallel workers
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # and the same for every process a test starts


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups off the items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.fspath).relative_to(TESTS).as_posix()
        if path in SERIAL_LANE:
            item.add_marker(pytest.mark.xdist_group("serial"))
        elif path in ONE_WORKER_FILES:
            item.add_marker(pytest.mark.xdist_group(path))


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a pytest/pytest-xdist pair whose `--dist loadgroup` silently stops grouping (lanes would race)."""
    from importlib.metadata import version

    def parts(name: str) -> tuple[int, ...]:
        return tuple(int(p) for p in version(name).split(".")[:2] if p.isdigit())

    if config.getoption("dist", "no") == "loadgroup" and parts("pytest") >= (9, 2) and parts("pytest-xdist") <= (3, 8):
        raise pytest.UsageError(
            f"pytest {version('pytest')} with pytest-xdist {version('pytest-xdist')} ignores "
            "xdist_group; install pyproject.toml's dev extra: pip install -e '.[dev]'"
        )


@pytest.fixture(autouse=True, scope="session")
def _figures_at_test_resolution():
    """save_figure's default dpi, lowered for the whole session (savefig is a large share of figure time)."""
    from torchlab.reporting import figures

    defaults = figures.save_figure.__defaults__
    figures.save_figure.__defaults__ = (TEST_FIGURE_DPI,)
    yield
    figures.save_figure.__defaults__ = defaults


def run_torchlab(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m torchlab ARGS` in a new process; returns the completed process (text output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "torchlab", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_script(name: str, *args: str) -> str:
    """What `python scripts/NAME ARGS` prints, run in this process; --help's exit status must be 0."""
    main = runpy.run_path(str(ROOT / "scripts" / name), run_name="script")["main"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(list(args))
        except SystemExit as exc:  # argparse's --help
            assert exc.code in (0, None), out.getvalue()
    return out.getvalue()


@pytest.fixture
def cli():
    """The CLI in a subprocess: cli("train", "digit-mlp", ...) -> CompletedProcess."""
    return run_torchlab


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory, monkeypatch):
    """Every test runs in a fresh temporary folder: a default output such as checkpoints/<task> lands there,
    never in the repository (where `make demo` may have left a run)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


# Paths of the repository tree the suite may change: caches and the tools' own folders, never the project.
TREE_IGNORED = {
    ".git",
    ".venv",
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    "__pycache__",
    "build",
    "dist",
    "mutants",
    ".coverage",
}


def tree_snapshot(root: Path = ROOT) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under `root`, TREE_IGNORED folders and egg-info left out."""
    files: dict[str, tuple[int, int]] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in TREE_IGNORED and not d.endswith(".egg-info")]
        for name in names:
            if name in TREE_IGNORED:
                continue
            path = Path(folder) / name
            with contextlib.suppress(FileNotFoundError):
                info = path.lstat()
                files[path.relative_to(root).as_posix()] = (info.st_size, info.st_mtime_ns)
    return files


def tree_changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """What changed between two snapshots, as "added x", "removed y", "changed z" lines."""
    return (
        [f"added {p}" for p in sorted(after.keys() - before.keys())]
        + [f"removed {p}" for p in sorted(before.keys() - after.keys())]
        + [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    )


_TREE = pytest.StashKey[dict[str, tuple[int, int]]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controlling process: before any worker starts
        session.config.stash[_TREE] = tree_snapshot()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a test left or changed anything in the repository tree."""
    before = session.config.stash.get(_TREE, None)
    if before is None:
        return
    changes = tree_changes(before, tree_snapshot())
    if changes:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write("\n")
            reporter.write_line(
                "the tests changed the repository tree (a test must write under tmp_path): " + "; ".join(changes[:10]),
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# `torchlab train digit-mlp` as ddp_run trains it with two Gloo ranks (add --batch-size 32 --out FOLDER): the
# uninterrupted reference of the runs test_elastic.py and test_two_nodes.py interrupt.
# adamw-20: a recipe whose forward pass draws no random numbers (the default's input noise does, and a checkpoint
# keeps rank 0's RNG states only, so a resumed two-rank run with noise would differ from an uninterrupted one)
DIGITS_TWO_RANKS = [
    "train",
    "digit-mlp",
    "--recipe",
    "adamw-20",
    "--device",
    "cpu",
    "--epochs",
    "3",
    "--no-figures",
    "--no-progress",
    "--seed",
    "0",
]


@pytest.fixture(scope="session")
def ddp_run(tmp_path_factory):
    """One torchrun launch with two Gloo ranks on one node (tests/ddp_worker.py): a DataLoader run, then
    DIGITS_TWO_RANKS with --batch-size 32 into <out>/digits, which no test may change. Returns (out, process)."""
    out = tmp_path_factory.mktemp("ddp")
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(TESTS / "ddp_worker.py"),
        str(out),
        *DIGITS_TWO_RANKS,
        "--batch-size",
        "32",
        "--out",
        str(out / "digits"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


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
    """best.pt of a keypoint-net trained for one short epoch on 40 synthetic faces.

    For predict plumbing, not accuracy.
    """
    import torchlab

    out = tmp_path_factory.mktemp("tiny-keypoint-net")
    torchlab.train(
        "keypoint-net",
        out=out,
        device="cpu",
        progress=False,
        figures=False,
        synthetic=40,
        width=4,
        epochs=1,
        batch_size=16,
        augment=False,
    )
    return out / "best.pt"
