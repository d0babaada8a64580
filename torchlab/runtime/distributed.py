"""torchrun / DistributedDataParallel plumbing, kept in one place.

Under `torchrun --nproc_per_node=N -m torchlab train TASK`, torchrun sets RANK, WORLD_SIZE
and LOCAL_RANK; `setup()` joins the process group (NCCL on CUDA, Gloo on the CPU), even
with one process, so the DDP path can be exercised on a single GPU. Without torchrun
everything here is a no-op and the world has one rank.

A lost process (a killed worker, a lost node) makes the next collective of every other rank fail:
at once when the connection is reset, else when the group's timeout (TORCHLAB_DIST_TIMEOUT seconds,
default 600) runs out; `lost_peer(exc)` tells such a failure from others. A worker torchrun's elastic
agent restarted (--max-restarts) joins a group of its own start (`setup`).

`teardown()` destroys the group, and with it the backend's threads (Gloo: two worker threads
and a socket loop), before the interpreter shuts down. Threads still running then can kill the
process at exit ("terminate called without an active exception", status -6).
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from torchlab.errors import TrainingError, UsageError
from torchlab.runtime.output_folder import restart_count

TIMEOUT_VARIABLE = "TORCHLAB_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0
# How a collective reports a peer that is gone: Gloo's reset or closed connections and timeouts, NCCL's aborts.
LOST_PEER_SIGNS = (
    "connection reset by peer",
    "connection closed by peer",
    "broken pipe",
    "timed out",
    "communicator was aborted",
    "watchdog caught collective",
)


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is running (torchrun), whatever its size."""
        return in_group()


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def in_group() -> bool:
    """Whether this process belongs to an initialized process group."""
    return dist.is_available() and dist.is_initialized()


def setup(device: torch.device) -> World:
    """Join the process group torchrun describes (once); return this process's place in it."""
    if not launched_by_torchrun():
        return World()
    if not in_group():
        # Imported after the group exists (DistributedDataParallel imports it), this module keeps
        # the group in its functions' default arguments for good, so that destroy_process_group
        # cannot free it. Imported first, it keeps None instead.
        import torch.distributed.nn.functional

        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        restart, timeout = restart_count(), timedelta(seconds=group_timeout())
        if restart == 0:
            dist.init_process_group(backend=backend, timeout=timeout)
        else:
            # torchrun keeps one store for all its starts: the addresses the killed start's ranks left there
            # would be read again (Gloo: "connectFullMesh failed ... Connection refused"). Each start gets
            # its own keys instead.
            store, rank, world_size = next(dist.rendezvous("env://"))
            dist.init_process_group(
                backend=backend,
                store=dist.PrefixStore(f"torchlab/start{restart}", store),
                rank=rank,
                world_size=world_size,
                timeout=timeout,
            )
    return current()


def group_timeout() -> float:
    """Seconds a collective waits for a silent peer before it fails (TORCHLAB_DIST_TIMEOUT, default 600)."""
    text = os.environ.get(TIMEOUT_VARIABLE, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise UsageError(
            f"{TIMEOUT_VARIABLE}={text!r}: give the seconds a collective may wait for another process, a number > 0"
        )
    return seconds


def lost_peer(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another process of the group died or went silent."""
    if not (in_group() and dist.get_world_size() > 1):
        return False
    text = str(exc).lower()
    return isinstance(exc, getattr(dist, "DistError", ())) or (
        isinstance(exc, RuntimeError) and any(sign in text for sign in LOST_PEER_SIGNS)
    )


def lost_peer_reason(exc: BaseException) -> str:
    """The first line of a collective's error, without the C++ source location ("[.../pair.cc:545] ")."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    while line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    line = line.split(". ")[0].rstrip(".")  # Gloo goes on with advice that names no process
    return line if len(line) <= 120 else line[:117] + "..."


def current() -> World:
    """This process's place in the world, without joining anything."""
    if in_group():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks (in place); identity with one rank."""
    if in_group() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_int(value: int, device: torch.device) -> list[int]:
    """Every rank's `value`, in rank order; [value] with one rank."""
    if not (in_group() and dist.get_world_size() > 1):
        return [int(value)]
    mine = torch.tensor([int(value)], device=device, dtype=torch.int64)
    parts = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, mine)
    return [int(p.item()) for p in parts]


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's decision, known by every rank."""
    if not (in_group() and dist.get_world_size() > 1):
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier() -> None:
    if in_group() and dist.get_world_size() > 1:
        dist.barrier()


def teardown(synchronize: bool = False) -> None:
    """Leave the process group and end its threads. `synchronize=True` (the normal end of a run)
    first waits for every rank, so that no rank closes its connections while a peer is still using
    them; error paths leave it off, as a peer that did not fail may be inside another collective."""
    if in_group():
        if synchronize:
            barrier()
        gc.collect()  # unreachable DDP wrappers (reference cycles) still hold the group: free them first
        dist.destroy_process_group()  # drops the last reference: the group's threads are joined here


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel inside a process group (one GPU per process), else as it is."""
    if not in_group():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (what evaluation calls: no gradient sync, so
    ranks may hold validation shards of different sizes without waiting on each other)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def no_sync(model: torch.nn.Module, sync: bool) -> Any:
    """Inside: a DDP model's backward keeps its gradients local unless `sync` (accumulation's inner batches)."""
    if sync or not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def check_equal_steps(world: World, batches_per_rank: int | None, accumulate: int, device: torch.device) -> None:
    """Under DDP every rank must take the same number of steps, or the all-reduce hangs: a TrainingError
    when they would not (`batches_per_rank`: this rank's training batches per epoch, None: no length)."""
    if not world.distributed:
        return
    if batches_per_rank is None:
        if accumulate > 1:  # the last window's gradients would never be all-reduced
            raise TrainingError(
                "gradient accumulation under torchrun needs training batches with a length "
                "(a TensorBatcher or a DataLoader), so that every rank knows the epoch's last step"
            )
        return
    counts = all_gather_int(batches_per_rank, device)
    if len(set(counts)) > 1:
        raise TrainingError(
            f"the ranks would take different numbers of training steps per epoch ({counts}); "
            "shuffle the training TensorBatcher or use torchlab.data.batcher.make_loader, which pad the shards"
        )
