"""Checks on what a user hands torchlab: finite numbers, sizes the machine can hold, regular
files, and options a command cannot use. Each failure is a one-line UsageError/DataError."""

from __future__ import annotations

import math
import os
import stat
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from torchlab.errors import DataError, Note, UsageError  # noqa: F401  (Note: still importable from here)

BIGGEST_COORDINATE = 1e6  # the small nets compute in float32: far beyond this, outputs become inf or NaN


def finite_pair(text: str, what: str, example: str) -> tuple[float, float]:
    """'1.5,0.2' -> (1.5, 0.2); anything else, NaN, infinity or a huge value is a UsageError naming `what`."""
    try:
        first, second = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{what} takes two numbers A,B (e.g. {example}), got {text!r}") from None
    require_finite(what, first, second, shown=text)
    return first, second


def require_finite(what: str, *values: float, shown: Any = None, limit: float = BIGGEST_COORDINATE) -> None:
    """Refuse NaN, infinite and huge values: they would give NaN results with exit status 0."""
    if not all(math.isfinite(v) and abs(v) <= limit for v in values):
        got = shown if shown is not None else " ".join(f"{v:g}" for v in values)
        raise UsageError(f"{what} must be finite numbers between -{limit:g} and {limit:g}, got {got}")


def at_most(flag: str, value: int | float, limit: int | float, why: str) -> None:
    """`flag` may not exceed `limit`; the error says why the limit is there."""
    if value > limit:
        raise UsageError(f"{flag} must be <= {limit:,} ({why}), got {value:,}")


BUDGET_FRACTION = 0.8  # of the free memory: what one input may take, leaving room for the rest of the process


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes free for new tensors on `device` (None when this platform does not say).

    On the CPU: the least of the machine's available memory, what this process's address-space
    limit (`ulimit -v`, RLIMIT_AS) leaves and what its cgroup's memory limit leaves.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    limits = [v for v in (_meminfo_available(), _address_space_left(), _cgroup_left()) if v is not None]
    return max(0, min(limits)) if limits else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left() -> int | None:
    """RLIMIT_AS minus the address space this process already maps (None: no limit)."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (ImportError, OSError, StopIteration, ValueError):
        return None
    return limit - used


def _cgroup_left() -> int | None:
    """A cgroup v2 memory limit minus the memory the cgroup uses (None: no limit or no cgroup v2)."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            return int(limit) - int(f.read().strip())
    except (OSError, ValueError):
        return None


def memory_budget(device: torch.device | str = "cpu") -> int | None:
    """The bytes one user-sized input may claim on `device`: BUDGET_FRACTION of the free memory (None: unknown)."""
    free = available_memory(device)
    return None if free is None else int(free * BUDGET_FRACTION)


def check_memory(needed: int, what: str, advice: str, device: torch.device | str = "cpu") -> None:
    """Refuse work whose tensors need more than the memory budget of `device`, before allocating any.

    The UsageError names the input (`what`), what it would need and the budget; `advice` says what to change.
    """
    budget = memory_budget(device)
    if budget is not None and needed > budget:
        raise UsageError(
            f"{what} would need about {_size(needed)} of memory, over the budget of {_size(budget)} "
            f"({BUDGET_FRACTION:.0%} of the {_size(available_memory(device) or 0)} free on "
            f"{torch.device(device)}); {advice}"
        )


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def require_regular_file(path: str | os.PathLike, what: str) -> Path:
    """A path that is an ordinary file: a FIFO, socket or device would block or never end."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist; check the path") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{what} {path} is a folder; give the path of one file")
    if not stat.S_ISREG(mode):
        raise DataError(f"{what} {path} is not a regular file (a pipe, socket or device); give a file on disk")
    return path


def refuse_unused(options: Any, command: str, *names: str) -> None:
    """A UsageError for each inference option in `names` set away from its default: the command ignores it."""
    defaults = {f.name: f.default for f in fields(options)}
    for name in names:
        if getattr(options, name) != defaults[name]:
            flag = {"boxes": "--box"}.get(name, f"--{name.replace('_', '-')}")
            raise UsageError(f"{flag} is not used by {command}; drop it")
