"""The output-folder rule: one run per folder, never replaced silently, never shared by two processes.

A new run into a folder that already holds a run (best.pt, last.pt or history.csv) is refused
unless it resumes that run or the user asks to overwrite it; overwriting first removes every
file the earlier run wrote (config.toml too), so nothing of it mixes with the new one. While a run trains, it
holds an exclusive lock on `<out>/.torchlab.lock` (POSIX `flock`; released by the kernel
when the process ends, even on SIGKILL), so a second run into the same folder fails at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from torchlab.errors import UsageError

RUN_FILES = ("best.pt", "last.pt", "history.csv")
RUN_RECORDS = ("config.toml",)  # written beside them, but alone they do not make a run
RUN_FOLDERS = ("figures", "tensorboard")
LOCK_NAME = ".torchlab.lock"


def holds_run(out: Path) -> bool:
    return any((out / name).exists() for name in RUN_FILES)


def check_output_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a new run into a folder that holds one, unless resuming or overwriting; write nothing."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for checkpoints, history and figures")
    if resume and not (out / "last.pt").exists():
        raise UsageError(f"--resume was given but {out / 'last.pt'} does not exist; drop --resume or fix --out")
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other; drop one")
    if not resume and not overwrite and holds_run(out):
        raise UsageError(f"{out} already holds a run (best.pt, last.pt or history.csv); continue it with --resume, "
                         "replace it with --overwrite, or choose another --out")


def clear_run(out: Path) -> None:
    """Remove what an earlier run wrote into `out` (only torchlab's own files and folders)."""
    for name in RUN_FILES + RUN_RECORDS:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    for name in RUN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)


@contextlib.contextmanager
def locked_output(out: Path, enabled: bool = True) -> Iterator[None]:
    """Hold the folder's run lock for the block; the folder is removed again if the block leaves it empty."""
    if not enabled:
        yield
        return
    created = not out.exists()
    lock_path = out / LOCK_NAME
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")
    except OSError as exc:  # /proc, a read-only disk, no permission: the folder, not the lock file, is the problem
        reason = exc.strerror or type(exc).__name__
        what = "is a folder torchlab cannot create files in" if out.is_dir() else "cannot be created"
        raise UsageError(f"--out {out} {what} ({reason}); choose another --out") from None
    try:
        _acquire(handle, out, lock_path)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()
        with contextlib.suppress(OSError):
            lock_path.unlink()
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: a run that failed before writing leaves nothing behind


def _acquire(handle, out: Path, lock_path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the folder rule above still applies
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = lock_path.read_text().strip() or "?"
        handle.close()
        raise UsageError(f"another torchlab run (process {other}) is writing to {out}; wait for it to finish "
                         "or choose another --out") from None
