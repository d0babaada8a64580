"""Gradient accumulation on two Gloo ranks; not a test module itself. ddp_control_worker.py calls
`report` inside its two-rank launch (test_ddp_control.py checks it); it also runs on its own:

    torchrun --standalone --nproc_per_node=2 tests/accumulate_worker.py OUT

Each rank trains the float64 net of `train` twice under DDP, batch 16 x accumulate 4 and batch 64
without accumulation, counts the gradient all-reduces, and writes the weights and the counts to
OUT/rank<R>.json (`report`, which another two-rank worker can call as well).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from torchlab import EarlyStopping, Trainer
from torchlab.data import TensorBatcher
from torchlab.runtime import distributed

EPOCHS = 2


def train(batch_size: int, accumulate: int, n: int = 200, grad_clip: float | None = None, ddp_hook: bool = True):
    """The float64 net on `n` samples (each rank's shard under torchrun): (final weights, FitResult, the
    number of gradient all-reduces DDP made; 0 without DDP)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.sin(x @ torch.linspace(-1, 1, 5, dtype=torch.float64)).unsqueeze(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-3)
    batches = TensorBatcher((x, y), batch_size, shuffle=True, seed=2)
    steps = -(-len(batches) // accumulate)
    # OneCycleLR refuses a step past its total: a schedule stepped per batch would fail here
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=EPOCHS * steps)
    trainer = Trainer(
        model,
        nn.MSELoss(),
        opt,
        epochs=EPOCHS,
        scheduler=scheduler,
        scheduler_interval="batch",
        early_stopping=EarlyStopping("train_loss", patience=None, restore_best_weights=False),
        accumulate=accumulate,
        grad_clip=grad_clip,
        progress=False,
    )
    allreduces = []
    if isinstance(trainer.net, nn.parallel.DistributedDataParallel) and ddp_hook:
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import (
            allreduce_hook,
        )

        def counting(state, bucket):
            allreduces.append(1)
            return allreduce_hook(state, bucket)

        trainer.net.register_comm_hook(None, counting)
    result = trainer.fit(batches)
    assert scheduler.last_epoch == EPOCHS * steps  # one schedule step per optimizer step
    return model.state_dict(), result, len(allreduces)


def report() -> dict:
    """Both trainings on this rank: their weights (as lists), all-reduce counts and training losses."""
    out = {}
    for name, batch_size, accumulate in (("accumulated", 16, 4), ("plain", 64, 1)):
        weights, result, allreduces = train(batch_size, accumulate)
        out[name] = {
            "weights": {k: v.tolist() for k, v in weights.items()},
            "allreduces": allreduces,
            "train_loss": [row["train_loss"] for row in result.history],
        }
    return out


def main() -> int:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    world = distributed.setup(torch.device("cpu"))
    result = {"world_size": world.world_size, **report()}
    distributed.teardown(synchronize=True)
    out.joinpath(f"rank{world.rank}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
