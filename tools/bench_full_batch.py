"""Two choices of the small tasks, each measured against the plain alternative in the same run.

1. One CPU thread vs torch's default thread count for full-batch steps of the 2->16->1 ring net.
2. Checkpoints once at the end (engine/full_batch.fit_and_save) vs after every epoch (the Trainer's
   default) for 500 epochs of the patch regressor.

    python tools/bench_full_batch.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from torchlab.data.batcher import TensorBatcher
from torchlab.data.patch import PatchScaling, design_matrix, ramp_patch
from torchlab.data.ring import sample_ring_points
from torchlab.engine.full_batch import fit_and_save
from torchlab.engine.trainer import Trainer
from torchlab.models import build_model


def ring_steps_per_second(threads: int, steps: int = 300) -> float:
    torch.set_num_threads(threads)
    x, y = sample_ring_points(1400, seed=0)
    torch.manual_seed(0)
    model = build_model("ring-mlp")
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(10):  # warm-up
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def patch_fit_seconds(per_epoch_checkpoints: bool, epochs: int = 500) -> float:
    rows, targets = PatchScaling.unit(32).apply(*design_matrix(ramp_patch()))
    batches = TensorBatcher((rows.float(), targets.float()), None)
    model = build_model("patch-linear")
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(
            model,
            nn.MSELoss(),
            torch.optim.SGD(model.parameters(), lr=0.5),
            epochs=epochs,
            checkpoint_dir=folder,
            progress=False,
            checkpoint_meta={"task": "patch", "model_name": "patch-linear"},
        )
        start = time.perf_counter()
        if per_epoch_checkpoints:
            trainer.fit(batches)
        else:
            fit_and_save(trainer, batches, Path(folder))
        return time.perf_counter() - start


def main() -> None:
    default_threads = torch.get_num_threads()
    many = ring_steps_per_second(default_threads)
    one = ring_steps_per_second(1)
    torch.set_num_threads(default_threads)
    print(
        f"ring-mlp full-batch steps/s: {one:.0f} on 1 thread, {many:.0f} on {default_threads} threads "
        f"(ratio {one / many:.2f})"
    )
    every = patch_fit_seconds(True)
    once = patch_fit_seconds(False)
    print(
        f"patch-linear 500 epochs: {every:.2f} s with a checkpoint every epoch, {once:.2f} s saving once "
        f"(ratio {every / once:.1f})"
    )


if __name__ == "__main__":
    main()
