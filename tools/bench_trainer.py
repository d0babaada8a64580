"""What does the Trainer cost? It against a hand-written loop on the same model, data and optimizer.

    python tools/bench_trainer.py [--repeats 7] [--epochs 10] [--threads 1]

Both sides train from the same initial weights on the same on-device batches (TensorBatcher),
with AdamW, and both report the mean training loss and accuracy per epoch plus the validation
loss and accuracy: the Trainer's work, minus the framework. Runs alternate (hand, Trainer,
hand, ...) in one process so that machine noise hits both alike; the medians are compared, of
CPU time (this process's, single-threaded: steady on a busy machine) and of wall time.
Two models: the digit MLP on scikit-learn's digits (2,410 parameters: the per-step Python cost
shows most here) and a 784-512-256-10 MLP on MNIST-sized random data. The Trainer runs without
a checkpoint folder (the loop's own cost); one more line shows it with checkpoints every epoch.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from torch import nn

from torchlab import Trainer
from torchlab.data import TensorBatcher
from torchlab.data.digits import load_digits_split
from torchlab.engine.metrics import Accuracy


def hand_loop(
    model: nn.Module, optimizer: torch.optim.Optimizer, train: TensorBatcher, val: TensorBatcher, epochs: int
) -> list[dict[str, float]]:
    """The loop a careful person writes by hand: train, then evaluate, with epoch means of loss and accuracy."""
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(epochs):
        model.train()
        train.set_epoch(epoch)
        loss_sum, correct, seen = torch.zeros(()), torch.zeros(()), 0
        for x, y in train:
            output = model(x)
            loss = loss_fn(output, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (output.argmax(1) == y).sum()
            seen += len(y)
        model.eval()
        val_loss, val_correct, val_seen = torch.zeros(()), torch.zeros(()), 0
        with torch.no_grad():
            for x, y in val:
                output = model(x)
                val_loss += loss_fn(output, y) * len(y)
                val_correct += (output.argmax(1) == y).sum()
                val_seen += len(y)
        history.append(
            {
                "train_loss": loss_sum.item() / seen,
                "train_accuracy": correct.item() / seen,
                "val_loss": val_loss.item() / val_seen,
                "val_accuracy": val_correct.item() / val_seen,
            }
        )
    return history


def trainer_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: TensorBatcher,
    val: TensorBatcher,
    epochs: int,
    checkpoint_dir: str | None = None,
) -> list[dict[str, float]]:
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        metrics={"accuracy": Accuracy()},
        epochs=epochs,
        progress=False,
        checkpoint_dir=checkpoint_dir,
    )
    return trainer.fit(train, val).history


def digits_setup() -> tuple[nn.Module, TensorBatcher, TensorBatcher]:
    from torchlab.models import build_model

    data = load_digits_split()
    model = build_model("digit-mlp")
    return (
        model,
        TensorBatcher((data.x_train, data.y_train), 64, shuffle=True),
        TensorBatcher((data.x_test, data.y_test), 512),
    )


def mnist_sized_setup() -> tuple[nn.Module, TensorBatcher, TensorBatcher]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(12_000, 784, generator=g), torch.randint(0, 10, (12_000,), generator=g)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    return (
        model,
        TensorBatcher((x[:10_000], y[:10_000]), 128, shuffle=True),
        TensorBatcher((x[10_000:], y[10_000:]), 1000),
    )


def time_run(run: Callable, model: nn.Module, train, val, epochs: int) -> tuple[float, float, list[dict[str, float]]]:
    """(CPU seconds of this process, wall seconds, history) of one training run from `model`'s weights."""
    fresh = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    wall, cpu = time.perf_counter(), time.process_time()
    history = run(fresh, optimizer, train, val, epochs)
    return time.process_time() - cpu, time.perf_counter() - wall, history


def compare(name: str, setup: Callable, epochs: int, repeats: int) -> None:
    torch.manual_seed(0)
    model, train, val = setup()
    with tempfile.TemporaryDirectory() as folder:
        variants = {
            "hand loop": hand_loop,
            "Trainer": trainer_loop,
            "Trainer + checkpoints": lambda *a: trainer_loop(*a, checkpoint_dir=folder),
        }
        for run in variants.values():  # warm-up: first-call allocations, lazy imports
            time_run(run, model, train, val, 1)
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        wall: dict[str, list[float]] = {k: [] for k in variants}
        histories = {}
        for _ in range(repeats):
            for label, run in variants.items():
                cpu_s, wall_s, histories[label] = time_run(run, model, train, val, epochs)
                cpu[label].append(cpu_s)
                wall[label].append(wall_s)
    same = all(abs(a["val_loss"] - b["val_loss"]) < 1e-5 for a, b in zip(histories["hand loop"], histories["Trainer"]))
    print(
        f"{name}: {epochs} epochs x {len(train)} steps, {repeats} interleaved repeats, medians"
        f" (same losses in both loops: {same})"
    )
    print(f"  {'':<22} {'CPU ms':>9} {'vs hand':>8} {'wall ms':>9} {'vs hand':>8}")
    cpu_base, wall_base = statistics.median(cpu["hand loop"]), statistics.median(wall["hand loop"])
    for label in variants:
        c, w = statistics.median(cpu[label]), statistics.median(wall[label])
        print(f"  {label:<22} {c * 1000:9.1f} {c / cpu_base - 1:+8.1%} {w * 1000:9.1f} {w / wall_base - 1:+8.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: steadier timings)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s)")
    compare("digit-mlp on digits (batch 64)", digits_setup, args.epochs, args.repeats)
    compare(
        "784-512-256-10 MLP on 10,000 random samples (batch 128)",
        mnist_sized_setup,
        max(2, args.epochs // 5),
        args.repeats,
    )


if __name__ == "__main__":
    main()
