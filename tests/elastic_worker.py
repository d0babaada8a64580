"""`torchlab CLI_ARGS...` under torchrun, with a worker (or its whole node) lost at a chosen training step.
Started by test_elastic.py and test_two_nodes.py; not a test module itself.

    torchrun --standalone --nproc-per-node=2 --max-restarts=1 tests/elastic_worker.py OUT KILL CLI_ARGS...

KILL  none:                  run the CLI unchanged.
      worker:RANK:EPOCH:STEP the process of rank RANK (*: any rank) SIGKILLs itself after STEP training
                             batches of epoch EPOCH (1-based), on the first start only
                             (TORCHELASTIC_RESTART_COUNT 0), as an out-of-memory kill would.
      node:RANK:EPOCH:STEP   the same, but it first SIGKILLs its torchrun launcher: the whole node is gone.
Every start of every rank appends the epochs (1-based) whose training batches it began to
OUT/epochs-start<N>-rank<R>.txt, N being torchrun's restart count: what each start trained.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).resolve()
ROOT = WORKER.parents[1]


def record_and_kill(out: Path, kill: str) -> None:
    from torchlab.data.batcher import TensorBatcher

    start = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    rank = int(os.environ["RANK"])
    record = out / f"epochs-start{start}-rank{rank}.txt"
    what, kill_rank, kill_epoch, kill_step = kill.split(":") if kill != "none" else ("none", "", "0", "0")
    armed = what != "none" and start == 0 and kill_rank in ("*", str(rank))
    real_iter = TensorBatcher.__iter__

    def iterate(self):
        for step, batch in enumerate(real_iter(self)):
            if self.shuffle and step == 0:  # the training batches of epoch self.epoch + 1 begin
                with record.open("a") as f:
                    f.write(f"{self.epoch + 1}\n")
            if armed and self.shuffle and self.epoch + 1 == int(kill_epoch) and step == int(kill_step):
                if what == "node":
                    os.kill(os.getppid(), signal.SIGKILL)  # the launcher: no agent is left to restart anything
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

    TensorBatcher.__iter__ = iterate


def epochs_trained(out: Path, start: int, rank: int) -> list[int]:
    """The epochs whose training batches start `start` of rank `rank` began ([] when it trained none)."""
    path = out / f"epochs-start{start}-rank{rank}.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(torchrun_args: list[str], out: Path, kill: str, cli_args: list[str], log: Path) -> subprocess.Popen:
    """`torchrun TORCHRUN_ARGS elastic_worker.py OUT KILL CLI_ARGS` in a new process (one thread per worker),
    its output in LOG.out and LOG.err."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TORCHLAB_DIST_TIMEOUT="30")
    env.pop("TORCHELASTIC_RESTART_COUNT", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", *torchrun_args, str(WORKER), str(out), kill, *cli_args]
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(f"{log}.out", "w") as stdout, open(f"{log}.err", "w") as stderr:
        return subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr, text=True)


def finish(proc: subprocess.Popen, timeout: float) -> int:
    """The launcher's exit status; killed (and a failed check) when it runs past `timeout` seconds."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"torchrun ran past {timeout} s: {proc.args}") from None


def history_without_seconds(folder: Path) -> list[dict[str, str]]:
    """history.csv's rows, without the wall-clock column (the one thing two equal runs do not share)."""
    with (folder / "history.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def assert_same_run(got: Path, want: Path) -> None:
    """best.pt and last.pt of `got` hold the weights (bit for bit) and epochs of `want`'s; history.csv the same rows."""
    from torchlab.engine.checkpoint import read_checkpoint

    for name in ("best.pt", "last.pt"):
        mine, theirs = read_checkpoint(got / name), read_checkpoint(want / name)
        assert mine["epoch"] == theirs["epoch"], name
        assert mine["state_dict"].keys() == theirs["state_dict"].keys(), name
        for key, value in theirs["state_dict"].items():
            assert torch.equal(mine["state_dict"][key], value), f"{name}: {key} differs from the uninterrupted run"
    assert history_without_seconds(got) == history_without_seconds(want)


def main() -> int:
    out, kill, *cli_args = sys.argv[1:]
    torch.set_num_threads(1)
    Path(out).mkdir(parents=True, exist_ok=True)
    record_and_kill(Path(out), kill)
    from torchlab.cli.main import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main())
