"""A `torchlab train ...` process that can be made to stall at a chosen point, so a test can
SIGKILL it exactly there (see test_crash_resume.py). Not a test module itself.

    python tests/crash_worker.py MODE EPOCH MARKER CLI_ARGS...

MODE  none:  run the CLI unchanged.
      batch: stall inside epoch EPOCH (1-based), after its third training batch.
      write: stall halfway through writing last.pt at the end of epoch EPOCH: half the bytes
             are in the temporary file, flushed to disk, and the rename has not happened yet.
When the stall begins the worker creates the file MARKER and sleeps until it is killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch


def stall(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    time.sleep(600)


def stall_in_batches(epoch: int, marker: Path) -> None:
    from torchlab.data.batcher import TensorBatcher

    real_iter = TensorBatcher.__iter__

    def iterate(self):
        for step, batch in enumerate(real_iter(self)):
            if self.shuffle and self.epoch == epoch - 1 and step == 3:
                stall(marker)
            yield batch

    TensorBatcher.__iter__ = iterate


class HalfWriter:
    """A file whose first write() puts half the bytes on disk and then stalls."""

    def __init__(self, file, marker: Path) -> None:
        self.file, self.marker = file, marker

    def write(self, data: bytes) -> int:
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        os.fsync(self.file.fileno())
        stall(self.marker)
        return len(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.file.__exit__(*exc)


def stall_in_write(epoch: int, marker: Path) -> None:
    real_fdopen = os.fdopen
    writes = {"last.pt": 0}

    def fdopen(fd, *args, **kwargs):
        file = real_fdopen(fd, *args, **kwargs)
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".last.pt.") and name.endswith(".tmp"):
            writes["last.pt"] += 1
            if writes["last.pt"] == epoch:
                return HalfWriter(file, marker)
        return file

    os.fdopen = fdopen


def main() -> int:
    mode, epoch, marker, *cli_args = sys.argv[1:]
    torch.set_num_threads(1)  # the same arithmetic in every run, and kind to a shared machine
    if mode == "batch":
        stall_in_batches(int(epoch), Path(marker))
    elif mode == "write":
        stall_in_write(int(epoch), Path(marker))
    elif mode != "none":
        raise SystemExit(f"unknown mode {mode!r}")
    from torchlab.cli.main import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main())
