"""Two nodes on one machine: two `torchrun --nnodes=2 --nproc-per-node=1` launchers meet at a c10d
rendezvous on 127.0.0.1. One node is SIGKILLed (launcher and worker) part-way through epoch 2: the other
ends within a bounded time with a one-line error that names last.pt; `--resume` from that last.pt then ends
with the weights, best.pt and history.csv of the uninterrupted one-node two-rank run (ddp_run), bit for
bit, and the two-node checkpoint resumes on one process."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
import torch

import torchlab
from conftest import DIGITS_TWO_RANKS
from elastic_worker import (
    assert_same_run,
    epochs_trained,
    finish,
    free_port,
    history_without_seconds,
    launch,
)
from torchlab.cli.main import main
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.runtime.device import one_cpu_thread

LOST_WITHIN_S = 60  # the survivor's end after its peer's node is gone (the group's timeout is 30 s in these runs)


def wait_listening(port: int, proc, timeout: float = 120) -> None:
    """Until the first launcher's rendezvous store accepts connections (so that it, not the second, hosts it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, "the first launcher ended before its rendezvous store started"
            assert time.monotonic() < deadline, "the first launcher's rendezvous store never started"
            time.sleep(0.1)


def two_nodes(out: Path, kills: tuple[str, str], *cli_args: str) -> list:
    """Node 0's launcher (which hosts the rendezvous store), then node 1's; `kills` says what each node loses."""
    port = free_port()
    args = [
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        "--rdzv-id=two-nodes",
    ]
    cli = [*DIGITS_TWO_RANKS, "--batch-size", "32", *cli_args]
    first = launch(args, out, kills[0], cli, out / "node0")
    wait_listening(port, first)
    return [first, launch(args, out, kills[1], cli, out / "node1")]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """A two-node run whose node 1 is lost after 3 batches of epoch 2, then the same run resumed from its last.pt."""
    out = tmp_path_factory.mktemp("two-nodes")
    run = out / "run"
    lost = two_nodes(out / "lost", ("none", "node:*:2:3"), "--out", str(run))
    lost_status = finish(lost[1], 180)
    lost_at = time.monotonic()
    survivor_status = finish(lost[0], 180)
    survivor_seconds = time.monotonic() - lost_at
    after_loss = {
        "status": survivor_status,
        "lost_status": lost_status,
        "seconds": survivor_seconds,
        "stderr": (out / "lost" / "node0.err").read_text(),
        "last": read_checkpoint(run / "last.pt"),
        "history": history_without_seconds(run),
    }
    # the run goes on from last.pt with the two ranks on one node (one launcher less to start than two nodes)
    cli = [*DIGITS_TWO_RANKS, "--batch-size", "32", "--out", str(run), "--resume"]
    resumed = launch(["--standalone", "--nproc-per-node=2"], out / "resumed", "none", cli, out / "resumed" / "node0")
    statuses = [finish(resumed, 180)]
    return out, after_loss, statuses


def test_a_lost_node_ends_the_other_with_one_line_in_bounded_time(nodes, ddp_run):
    out, after, _ = nodes
    assert after["lost_status"] == -9  # node 1's launcher was SIGKILLed with its worker
    assert after["status"] != 0 and after["seconds"] < LOST_WITHIN_S, after
    errors = [line for line in after["stderr"].splitlines() if line.startswith("torchlab train: error:")]
    assert len(errors) == 1, after["stderr"][-3000:]
    assert "lost another process of this torchrun run" in errors[0]
    assert f"{out / 'run' / 'last.pt'} holds epoch 1" in errors[0] and "--resume" in errors[0]
    assert "[rank0]: Traceback" not in after["stderr"]  # the worker's own end is that line, not a traceback
    # what the two nodes wrote before the loss: epoch 1 of the one-node run
    assert after["last"]["epoch"] == 1 and after["last"]["world_size"] == 2
    reference, _ = ddp_run
    assert after["history"] == history_without_seconds(reference / "digits")[:1]


def test_resumed_from_last_pt_the_run_ends_as_the_uninterrupted_run(nodes, ddp_run):
    out, _, statuses = nodes
    assert statuses == [0], (out / "resumed" / "node0.err").read_text()[-3000:]
    ranks = (0, 1)
    assert [epochs_trained(out / "resumed", 0, rank) for rank in ranks] == [[2, 3], [2, 3]]  # from last.pt on
    reference, _ = ddp_run
    assert_same_run(out / "run", reference / "digits")


def test_a_two_node_checkpoint_resumes_on_one_process(nodes, tmp_path, capsys):
    out, _, _ = nodes
    shutil.copytree(out / "run", tmp_path / "run")
    with one_cpu_thread(torch.device("cpu")):
        assert (
            main([*DIGITS_TWO_RANKS, "--epochs", "4", "--batch-size", "64", "--out", str(tmp_path / "run"), "--resume"])
            == 0
        )
    resumed = read_checkpoint(tmp_path / "run" / "last.pt")
    assert resumed["epoch"] == 4 and resumed["world_size"] == 1
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3, 4]
    _, meta = torchlab.load(tmp_path / "run" / "best.pt")
    assert meta["metrics"]["test_accuracy"] >= 0.9
