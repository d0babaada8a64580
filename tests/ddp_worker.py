"""Run under torchrun by test_ddp.py (not a test module itself):

    torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT CLI_ARGS...

1. trains a small Trainer on a DataLoader built by `make_loader` (the DataLoader path) and
   writes what this rank saw to OUT/loader-rank<R>.json;
2. then runs `torchlab CLI_ARGS...` in the same process group (the TensorBatcher path), whose
   end leaves the group, and writes how many of the group's threads outlived that to
   OUT/threads-rank<R>.json.
`train_blobs` also runs in the test process itself, as the single-process reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ddp_control_worker import os_threads, threads_left
from torchlab import EarlyStopping, Trainer
from torchlab.data.batcher import make_loader
from torchlab.engine.metrics import Accuracy
from torchlab.runtime import distributed

GLOBAL_BATCH = 32


def blobs(n: int = 600) -> TensorDataset:
    """Three overlapping Gaussian blobs in 2-D (so accuracy stays below 1 and early stopping fires)."""
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 1.5], [1.5, -1.0], [-1.5, -1.0]])
    y = torch.arange(n) % 3
    return TensorDataset(centers[y] + torch.randn(n, 2, generator=g), y)


def train_blobs(out: Path | None) -> dict[str, Any]:
    """Train on the blobs through make_loader; what this rank saw and reached."""
    world = distributed.current()
    data = blobs()
    train_set = torch.utils.data.Subset(data, range(500))
    val_set = torch.utils.data.Subset(data, range(500, 600))
    train = make_loader(train_set, GLOBAL_BATCH // world.world_size, shuffle=True, seed=1)
    val = make_loader(val_set, 64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        metrics={"accuracy": Accuracy()},
        epochs=60,
        progress=False,
        checkpoint_dir=out,
        early_stopping=EarlyStopping("val_loss", "min", patience=2, min_delta=1e-3),
    )
    result = trainer.fit(train, val)
    return {
        "rank": world.rank,
        "world_size": world.world_size,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "val_accuracy": result.last["val_accuracy"],
        "sampler_epoch": train.sampler.epoch,
        "train_indices": sorted(int(i) for i in train.sampler),
        "val_indices": [int(i) for i in val.sampler],
        "steps": len(train),
    }


def main() -> int:
    out, *cli_args = sys.argv[1:]
    torch.set_num_threads(1)
    before = os_threads()
    world = distributed.setup(torch.device("cpu"))
    joined = os_threads()
    summary = train_blobs(Path(out) / "loader")
    Path(out, f"loader-rank{world.rank}.json").write_text(json.dumps(summary))
    from torchlab.cli.main import main as cli_main

    status = cli_main(cli_args)  # ends with distributed.teardown(synchronize=True)
    Path(out, f"threads-rank{world.rank}.json").write_text(json.dumps(threads_left(before, joined)))
    return status


if __name__ == "__main__":
    sys.exit(main())
