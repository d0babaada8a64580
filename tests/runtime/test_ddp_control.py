"""DDP control paths with two Gloo ranks: rank 0's early-stopping decision is the one every rank
follows, and ranks that would take different numbers of training steps are refused with a
TrainingError before the first step (instead of hanging in the gradient all-reduce); gradient
accumulation under DDP trains like the big batch with one all-reduce per optimizer step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from accumulate_worker import EPOCHS, train
from conftest import ROOT
from ddp_control_worker import batches, stop_run, trainer
from torchlab import EarlyStopping
from torchlab.errors import UsageError
from torchlab.runtime import distributed

WORKER = Path(__file__).resolve().parents[1] / "ddp_control_worker.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ranks(tmp_path_factory) -> list[dict]:
    """Two worker processes with the variables torchrun would set (no launcher process: faster)."""
    out = tmp_path_factory.mktemp("ddp_control")
    env = {k: v for k, v in os.environ.items() if k != "LOCAL_RANK"}
    env = dict(
        env,
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        WORLD_SIZE="2",
    )
    local = [{}, {"LOCAL_RANK": "1"}]  # rank 0 without LOCAL_RANK: it defaults to 0
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(out)],
            env=dict(env, RANK=str(r), **local[r]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    errors = []
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        if proc.returncode != 0:
            errors.append(stderr[-3000:])
    assert not errors, errors
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_helpers_combine_the_ranks(ranks, monkeypatch):
    # one process, no group: every helper gives the local value
    cpu = torch.device("cpu")
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "2")  # half of torchrun's variables is not torchrun
    assert not distributed.launched_by_torchrun()
    assert distributed.setup(cpu) == distributed.World() == distributed.current()
    monkeypatch.setenv("RANK", "0")
    assert distributed.launched_by_torchrun()
    monkeypatch.delenv("WORLD_SIZE")
    assert not distributed.launched_by_torchrun()
    assert not distributed.in_group()
    assert distributed.broadcast_flag(True, cpu) is True and distributed.broadcast_flag(False, cpu) is False
    assert distributed.all_gather_int(10, cpu) == [10]
    assert distributed.all_reduce_sum(torch.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]
    distributed.barrier()
    distributed.teardown()
    assert not distributed.World().distributed and distributed.World().is_main
    # two ranks
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["is_main"] for r in ranks] == [True, False]
    assert [r["local_rank"] for r in ranks] == [0, 1] and all(r["setup_again"] for r in ranks)
    assert ranks[0]["barrier_wait"] > 0.5  # rank 0 waited for rank 1 at the barrier
    assert not any(r["in_group_after_teardown"] for r in ranks)
    if ranks[0]["group_threads"] is not None:  # Linux: Gloo's threads ended in teardown, not at exit
        assert all(r["group_threads"] >= 1 for r in ranks) and [r["group_threads_left"] for r in ranks] == [0, 0]
    assert ranks[0]["teardown_wait"] > 0.3  # a synchronized teardown waits for the slower rank
    assert all(r["distributed"] for r in ranks)
    assert [r["flag_rank0_true"] for r in ranks] == [True, True]  # rank 0's flag wins
    assert [r["flag_rank1_true"] for r in ranks] == [False, False]
    assert [r["gathered"] for r in ranks] == [[10, 11], [10, 11]]  # every rank's value, in rank order
    assert [r["summed"] for r in ranks] == [[3.0, 2.0], [3.0, 2.0]]


def test_rank0_stop_decision_is_broadcast(ranks):
    # both ranks end like one process with rank 0's early stopping
    assert stop_run(stopper=True) == {"epochs_run": 2, "stopped_early": True, "stopped_epoch": 1}
    assert stop_run(stopper=False) == {"epochs_run": 4, "stopped_early": False, "stopped_epoch": None}
    # rank 0 stops after epoch 2; rank 1 (patience None) stops with it, at the same epoch
    assert (
        ranks[0]["rank0_stops"]
        == ranks[1]["rank0_stops"]
        == {"epochs_run": 2, "stopped_early": True, "stopped_epoch": 1}
    )
    # rank 1 alone wanting to stop is overruled: both ranks run all 4 epochs
    assert (
        ranks[0]["rank1_stops"]
        == ranks[1]["rank1_stops"]
        == {"epochs_run": 4, "stopped_early": False, "stopped_epoch": None}
    )


def test_unequal_step_counts_raise_training_error_on_every_rank(ranks):
    # one process has nobody to disagree with: 3 batches train
    assert trainer(EarlyStopping("train_loss", patience=None), epochs=1).fit(batches(6)).epochs_run == 1
    for r in ranks:
        assert r["unequal"].startswith("the ranks would take different numbers of training steps per epoch ([2, 3])")
        assert "make_loader" in r["unequal"]


def test_setup_picks_nccl_and_the_gpu_for_cuda_and_gloo_for_the_cpu(monkeypatch):
    """setup()'s device choices and the group's timeout, with the process group and the GPU calls faked (no GPU)."""
    from datetime import timedelta

    import torch.distributed as dist

    calls: list[tuple] = []
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.delenv("TORCHLAB_DIST_TIMEOUT", raising=False)
    monkeypatch.setattr(distributed, "in_group", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, timeout: calls.append(("init", backend, timeout)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("gpu", device)))
    assert distributed.setup(torch.device("cuda", 1)) == distributed.World()
    assert calls == [("gpu", torch.device("cuda", 1)), ("init", "nccl", timedelta(seconds=600))]
    calls.clear()
    monkeypatch.setenv("TORCHLAB_DIST_TIMEOUT", "45")  # a lost peer that stays silent ends the run after 45 s
    distributed.setup(torch.device("cpu"))
    assert calls == [("init", "gloo", timedelta(seconds=45))]
    for bad in ("0", "-3", "soon", "inf"):
        monkeypatch.setenv("TORCHLAB_DIST_TIMEOUT", bad)
        with pytest.raises(UsageError, match=f"TORCHLAB_DIST_TIMEOUT='{bad}'"):
            distributed.setup(torch.device("cpu"))


def test_on_two_gloo_ranks_batch_16_accumulated_4_times_trains_like_batch_64(ranks):
    """Each rank takes 100 of the 200 samples: 16 x 4 per rank, 64 per rank and 128 on one process agree."""
    one_process, one_result, _ = train(128, 1, 200)
    for rank in ranks:
        runs = rank["accumulate"]
        # 7 batches a rank (100 samples): windows of 4 and 3 batches, 2 all-reduces an epoch; 2 batches of 64 too
        assert runs["accumulated"]["allreduces"] == runs["plain"]["allreduces"] == EPOCHS * 2
        for name in ("accumulated", "plain"):
            weights = {k: torch.tensor(v, dtype=torch.float64) for k, v in runs[name]["weights"].items()}
            for key, value in one_process.items():
                assert torch.allclose(weights[key], value, rtol=0, atol=1e-12), key
            assert runs[name]["train_loss"] == pytest.approx([r["train_loss"] for r in one_result.history], rel=1e-12)
