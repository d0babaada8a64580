"""Where the suite's time goes: `pytest -p timing_plugin` prints, at the end, the seconds spent in
child processes (each `python` launched, torchrun included), in Trainer.fit, and in matplotlib's savefig.

A measuring aid for TESTING.md, not part of `make test`. Under pytest-xdist each worker reports its
own share; the numbers are wall seconds inside the test process that waited for them.
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict

import pytest

TOTALS: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)


def _timed(kind: str, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TOTALS[kind] += time.perf_counter() - started
            COUNTS[kind] += 1

    return wrapper


def _kind_of(command) -> str:
    text = " ".join(map(str, command)) if isinstance(command, (list, tuple)) else str(command)
    if "torch.distributed.run" in text or "torchrun" in text:
        return "subprocess: torchrun (DDP)"
    if "python" in text or text.endswith(".py"):
        return "subprocess: python"
    return "subprocess: other"


def pytest_configure(config: pytest.Config) -> None:
    original_run = subprocess.run

    def run(command, *args, **kwargs):
        return _timed(_kind_of(command), original_run)(command, *args, **kwargs)

    subprocess.run = run
    from matplotlib.figure import Figure

    from torchlab.engine.trainer import Trainer

    Trainer.fit = _timed("Trainer.fit (in process)", Trainer.fit)
    Figure.savefig = _timed("Figure.savefig (in process)", Figure.savefig)


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_sep("=", "where the time went (wall seconds in this process)")
    for kind in sorted(TOTALS):
        terminalreporter.write_line(f"{TOTALS[kind]:8.1f} s  {COUNTS[kind]:5d} calls  {kind}")
