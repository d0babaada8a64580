"""DistributedDataParallel on the CPU: two Gloo processes under torchrun train like one process
with the same global batch, shard the data (TensorBatcher and DataLoader paths), agree on early
stopping, and write a checkpoint that loads, and resumes, in a single process."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import torchlab
from conftest import DIGITS_TWO_RANKS as DIGITS
from ddp_worker import train_blobs
from torchlab.cli.main import main
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.runtime import distributed
from torchlab.runtime.device import one_cpu_thread


def one_thread():
    """Run like the torchrun workers (OMP_NUM_THREADS=1): same arithmetic, no thread fights on a busy box."""
    return one_cpu_thread(torch.device("cpu"))


def in_world(monkeypatch, rank: int, world_size: int) -> None:
    monkeypatch.setattr(distributed, "current", lambda: distributed.World(rank, world_size))


@pytest.mark.parametrize("n", [1293, 1294, 65])
def test_tensor_batcher_shards_cover_the_data(monkeypatch, n):
    x = torch.arange(n)
    train, val = {}, {}
    for rank in (0, 1):
        in_world(monkeypatch, rank, 2)
        batcher = TensorBatcher((x,), 32, shuffle=True, seed=5)
        batcher.set_epoch(3)
        train[rank] = torch.cat([b[0] for b in batcher])
        assert len(batcher) == len(list(batcher))
        val[rank] = torch.cat([b[0] for b in TensorBatcher((x,), 32)])
    # training: equal shard sizes (DDP needs equal step counts), everything seen, padding only when odd
    assert len(train[0]) == len(train[1]) == -(-n // 2)
    assert set(torch.cat([train[0], train[1]]).tolist()) == set(range(n))
    assert len(set(train[0].tolist()) & set(train[1].tolist())) == n % 2
    # evaluation: exact shards, each sample exactly once
    assert sorted(torch.cat([val[0], val[1]]).tolist()) == list(range(n))


def test_dataloader_path_shards_and_matches_single_process(ddp_run):
    out, _ = ddp_run
    ranks = [json.loads((out / f"loader-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # DistributedSampler: equal, disjoint shards covering the 500 training samples
    assert ranks[0]["steps"] == ranks[1]["steps"] == 16  # 250 samples a rank, 16 a batch
    assert not set(ranks[0]["train_indices"]) & set(ranks[1]["train_indices"])
    assert len(ranks[0]["train_indices"]) + len(ranks[1]["train_indices"]) == 500
    assert sorted(ranks[0]["val_indices"] + ranks[1]["val_indices"]) == list(range(100))
    # the Trainer called set_epoch every epoch; early stopping ended both ranks at the same epoch
    assert ranks[0]["sampler_epoch"] == ranks[0]["epochs_run"] - 1
    assert ranks[0]["epochs_run"] == ranks[1]["epochs_run"] < 60 and ranks[0]["stopped_early"]
    assert ranks[0]["val_accuracy"] == ranks[1]["val_accuracy"]  # all-reduced metrics
    assert sorted(p.name for p in (out / "loader").iterdir()) == ["best.pt", "history.csv", "last.pt"]
    with one_thread():
        single = train_blobs(None)
    assert single["world_size"] == 1 and single["steps"] == 16  # 500 samples, 32 a batch
    assert abs(single["val_accuracy"] - ranks[0]["val_accuracy"]) <= 0.05


def test_the_group_ends_its_threads_before_the_interpreter_does(ddp_run):
    """A Gloo thread still running while Python shuts down can abort the rank ("terminate called without
    an active exception", status -6): teardown must end the group's threads, DDP or not."""
    out, _ = ddp_run
    threads = [json.loads((out / f"threads-rank{r}.json").read_text()) for r in (0, 1)]
    if threads[0]["group_threads"] is None:
        pytest.skip("no /proc/self/task to list this process's threads")
    assert all(t["group_threads"] >= 1 for t in threads)  # the group started its threads (Gloo: 3)
    assert [t["group_threads_left"] for t in threads] == [0, 0]


def test_torchrun_digits_matches_single_process_and_resumes_on_one(ddp_run, tmp_path, capsys):
    out, proc = ddp_run
    assert proc.stdout.count("test_accuracy:") == 1  # rank 0 alone prints
    ddp_acc = float(proc.stdout.split("test_accuracy:")[1].split()[0])
    checkpoint = read_checkpoint(out / "digits" / "last.pt")
    assert checkpoint["world_size"] == 2 and checkpoint["epoch"] == 3

    # the checkpoint loads in this (single) process and scores what the DDP run reported
    assert main(["evaluate", str(out / "digits" / "best.pt"), "--device", "cpu"]) == 0
    assert abs(float(capsys.readouterr().out.split("accuracy: ")[1].split()[0]) - ddp_acc) < 1e-3

    # one process with the same global batch (2 x 32 = 64) lands within tolerance
    with one_thread():
        assert main([*DIGITS, "--batch-size", "64", "--out", str(tmp_path / "single")]) == 0
    single_acc = float(capsys.readouterr().out.split("test_accuracy:")[1].split()[0])
    assert abs(single_acc - ddp_acc) <= 0.03

    # written by 2 ranks, resumed by 1 (to 5 epochs): the schedule is replayed for one rank's batches; in a copy,
    # as the two-rank run is the reference of other files too (test_elastic.py, test_two_nodes.py)
    shutil.copytree(out / "digits", tmp_path / "digits")
    with one_thread():
        assert (
            main([*DIGITS, "--epochs", "5", "--batch-size", "64", "--out", str(tmp_path / "digits"), "--resume"]) == 0
        )
    resumed = read_checkpoint(tmp_path / "digits" / "last.pt")
    assert resumed["epoch"] == 5 and resumed["world_size"] == 1
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3, 4, 5]
    assert resumed["history"][-1]["lr"] < resumed["history"][2]["lr"]  # annealing continued
    model, meta = torchlab.load(tmp_path / "digits" / "best.pt")
    assert meta["world_size"] == 1 and meta["metrics"]["test_accuracy"] >= 0.9
