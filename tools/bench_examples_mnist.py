"""Time to 99% on MNIST: torchlab's default recipe against pytorch/examples' own mnist/main.py recipe.

    python tools/bench_examples_mnist.py --data-dir ../shared/data/mnist
    python tools/bench_examples_mnist.py --data-dir ../shared/data/mnist --recipe fast

bench_mnist.py compares two loops over the same model and recipe. This script compares what a
user gets: a `torchlab train mnist` recipe (`--recipe`; the default: mnist-cnn, AdamW + one-cycle,
batch 128, images on the device) against the recipe people copy from pytorch/examples' mnist/main.py, run
as that script runs it: its network (two 3x3 convs of 32 and 64 channels, max-pool, dropout,
9216->128->10), Adadelta with lr 1.0, the rate times 0.7 after each epoch, batches of 64 from a
DataLoader over torchvision's MNIST with ToTensor + Normalize(0.1307, 0.3081), negative
log-likelihood of log-softmax outputs. Both train on all 60,000 training images and are scored
on the 10,000 test images after each epoch (scoring is not timed); the examples loop stops at
the first epoch that reaches --target, or after --max-epochs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import bench_mnist  # tools/ is on sys.path when this file runs as a script
import torch
from torch import nn

from torchlab.data.mnist import load_mnist, normalization_stats
from torchlab.data.splits import normalize
from torchlab.errors import TorchlabError
from torchlab.runtime.device import pick_device

EXAMPLES_MEAN, EXAMPLES_STD = 0.1307, 0.3081  # the constants main.py normalizes with


class ExamplesNet(nn.Module):
    """pytorch/examples' MNIST network (about 1.2 million parameters), written out here."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(9216, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 10),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def run_examples(
    root: Path,
    device: torch.device,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    target: float,
    max_epochs: int,
    seed: int,
) -> list[tuple[float, float]]:
    """main.py's loop; returns [(cumulative train seconds, test accuracy)] per epoch, up to the target."""
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    model = ExamplesNet().to(device)
    dataset = datasets.MNIST(
        str(root),
        train=True,
        download=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((EXAMPLES_MEAN,), (EXAMPLES_STD,))]),
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    x_test = ((x_test - EXAMPLES_MEAN) / EXAMPLES_STD).to(device)
    points: list[tuple[float, float]] = []
    elapsed = 0.0
    for _ in range(max_epochs):
        model.train()
        start = time.perf_counter()
        for batch_idx, (data, labels) in enumerate(loader):
            data, labels = data.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = nn.functional.nll_loss(model(data), labels)
            loss.backward()
            optimizer.step()
            if batch_idx % 10 == 0:
                loss.item()  # main.py logs the loss every 10 batches
        scheduler.step()
        elapsed += time.perf_counter() - start
        accuracy = bench_mnist.test_accuracy(model, x_test, y_test.to(device), bench_mnist.contextlib.nullcontext)
        points.append((elapsed, accuracy))
        if accuracy >= target:
            break
    return points


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data", help="folder with the four MNIST IDX files (default: data/)")
    p.add_argument("--target", type=float, default=0.99, help="test accuracy to reach (default: 0.99)")
    p.add_argument("--max-epochs", type=int, default=5, help="epochs the examples loop may take (default: 5)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps | auto (default: cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default="default", help="the torchlab mnist recipe (default: default)")
    args = p.parse_args(argv)
    try:
        device = pick_device(args.device)
        data = load_mnist(args.data_dir)
        cfg = bench_mnist.recipe(bench_mnist.parse_args(["--data-dir", args.data_dir, "--recipe", args.recipe]))
    except TorchlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mean, std = normalization_stats(data.x_train)
    norm = {"mean": mean, "std": std}
    x_train, x_test = normalize(data.x_train, norm), normalize(data.x_test, norm)
    null = bench_mnist.contextlib.nullcontext
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    own_args = argparse.Namespace(seed=args.seed)
    results = {
        "torchlab": bench_mnist.run_torchlab(cfg, own_args, device, x_train, data.y_train, x_test, data.y_test, null)
    }
    with tempfile.TemporaryDirectory(prefix="torchlab-mnist-") as tmp:
        root = bench_mnist.prepare_torchvision_root(args.data_dir, Path(tmp))
        results["examples"] = run_examples(
            root, device, data.x_test, data.y_test, args.target, args.max_epochs, args.seed
        )
    for name, points in results.items():
        for epoch, (seconds, acc) in enumerate(points, start=1):
            print(f"{name:9s} epoch {epoch}: {seconds:7.2f} s of training, test accuracy {acc:.4f}")
    reached = {name: bench_mnist.time_to_target(points, args.target) for name, points in results.items()}
    for name, seconds in reached.items():
        shown = f"{seconds:.2f} s" if seconds is not None else f"not reached in {len(results[name])} epochs"
        print(f"time to {args.target:.3f} test accuracy, {name}: {shown}")
    if None not in reached.values():
        print(f"speed-up (examples / torchlab): {reached['examples'] / reached['torchlab']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
