"""Started twice by test_ddp_control.py with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT); not a test module itself. It runs under torchrun as well:

    torchrun --standalone --nproc_per_node=2 tests/ddp_control_worker.py OUT

Each rank drives the distributed helpers and the Trainer's control paths with deliberately
different local inputs, and writes what it got to OUT/rank<R>.json. A broken collective can leave
a rank waiting: the test's own time limit ends the workers then.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from accumulate_worker import report as accumulate_report
from torchlab import EarlyStopping, Trainer
from torchlab.data import TensorBatcher
from torchlab.errors import TrainingError
from torchlab.runtime import distributed


def trainer(es: EarlyStopping, epochs: int) -> Trainer:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    return Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.01),
        epochs=epochs,
        early_stopping=es,
        progress=False,
    )


def batches(n: int) -> TensorBatcher:
    x = torch.ones(n, 2)
    return TensorBatcher((x, x.sum(1, keepdim=True)), 2, shard=False)


def stop_run(stopper: bool) -> dict:
    """Only one rank's early stopping wants to stop (after epoch 2); the other never would."""
    if stopper:
        es = EarlyStopping("train_loss", "min", patience=1, min_delta=1e9, restore_best_weights=False)
    else:
        es = EarlyStopping("train_loss", "min", patience=None, restore_best_weights=False)
    result = trainer(es, epochs=4).fit(batches(4))
    return {"epochs_run": result.epochs_run, "stopped_early": result.stopped_early, "stopped_epoch": es.stopped_epoch}


def os_threads() -> set[int] | None:
    """The ids of this process's operating-system threads (Linux; None where /proc is missing)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return None


def threads_left(before: set[int] | None, joined: set[int] | None) -> dict:
    """How many threads the group started when it was joined, and how many of them are still running."""
    if before is None or joined is None:
        return {"group_threads": None, "group_threads_left": None}
    started = joined - before
    return {"group_threads": len(started), "group_threads_left": len(started & os_threads())}


def main() -> int:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    before = os_threads()
    world = distributed.setup(torch.device("cpu"))  # joins the Gloo group torchrun's variables describe
    joined = os_threads()
    rank = world.rank
    report: dict = {
        "rank": rank,
        "world_size": world.world_size,
        "local_rank": world.local_rank,
        "distributed": world.distributed,
        "is_main": world.is_main,
        "setup_again": distributed.setup(torch.device("cpu")) == world,
    }  # no second join
    if rank == 1:
        time.sleep(1.0)
    started = time.perf_counter()
    distributed.barrier()  # rank 0 waits here for rank 1's second of sleep
    report["barrier_wait"] = time.perf_counter() - started
    cpu = torch.device("cpu")
    report["flag_rank0_true"] = distributed.broadcast_flag(rank == 0, cpu)
    report["flag_rank1_true"] = distributed.broadcast_flag(rank == 1, cpu)
    report["gathered"] = distributed.all_gather_int(10 + rank, cpu)
    report["summed"] = distributed.all_reduce_sum(torch.tensor([rank + 1.0, 2.0 * rank])).tolist()
    report["rank0_stops"] = stop_run(stopper=rank == 0)
    report["rank1_stops"] = stop_run(stopper=rank == 1)
    report["accumulate"] = accumulate_report()  # batch 16 x accumulate 4 against batch 64, under DDP
    out.joinpath(f"rank{rank}.json").write_text(json.dumps(report))
    try:  # rank 0 has 2 batches an epoch, rank 1 has 3: fit must refuse before the first step
        trainer(EarlyStopping("train_loss", patience=None), epochs=1).fit(batches(4 + 2 * rank))
        report["unequal"] = "trained"
    except TrainingError as exc:
        report["unequal"] = str(exc)
    if rank == 1:
        time.sleep(0.5)
    started = time.perf_counter()
    distributed.teardown(synchronize=True)  # rank 0 waits for rank 1 before closing its connections
    report["teardown_wait"] = time.perf_counter() - started
    report["in_group_after_teardown"] = distributed.in_group()
    report.update(threads_left(before, joined))  # the Trainers wrapped DDP: the group must still end
    out.joinpath(f"rank{rank}.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
