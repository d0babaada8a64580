"""Time-to-accuracy on MNIST: torchlab's loop against a plain reference loop, in one process.

    python tools/bench_mnist.py --data-dir ../shared/data/mnist --threads 1
    python tools/bench_mnist.py --data-dir ../shared/data/mnist --recipe fast --only torchlab --seed 3

Both loops train the same model (mnist-cnn by default, same seed, same initial weights), with
the same optimizer, one-cycle schedule, batch size and epochs, on the same 60,000 training
images, and are scored on the 10,000 test images after every epoch (scoring is not timed).
The settings are an `mnist` recipe (`--recipe`, default: the default recipe) with the
flags below applied; the model, loss and optimizer come from the task's own functions.
They differ only in how batches reach the model:

  torchlab   the normalized images live on the device in a TensorBatcher and are sliced by a
             random permutation; the Trainer accumulates loss/metrics on the device.
  reference  pytorch/examples' mnist/main.py: a DataLoader over torchvision.datasets.MNIST with
             ToTensor + Normalize per image, a host-to-device copy per batch, loss.item() logging.

torchvision's MNIST reads decompressed files from <root>/MNIST/raw/, so the script writes them
into a temporary folder first. It prints the test accuracy and cumulative training time per
epoch, the time each loop needs to reach --target, and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import torchlab
from torchlab.data.batcher import TensorBatcher
from torchlab.data.mnist import FILES, find_file, load_mnist, normalization_stats
from torchlab.data.splits import normalize
from torchlab.engine.metrics import Accuracy
from torchlab.engine.trainer import Trainer
from torchlab.errors import TorchlabError
from torchlab.runtime.device import pick_device, seed_everything
from torchlab.tasks.mnist import train as mnist

RECIPE = torchlab.get_recipe("mnist")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data", help="folder with the four MNIST IDX files (default: data/)")
    p.add_argument("--recipe", default="default", help="mnist recipe to start from (default: default)")
    p.add_argument("--model", help=f"10-class model to train (default: the recipe's; {RECIPE.model} for default)")
    p.add_argument("--epochs", type=int, help="default: the recipe's")
    p.add_argument("--batch-size", type=int, help="default: the recipe's")
    p.add_argument("--lr", type=float, help="default: the recipe's")
    p.add_argument("--weight-decay", type=float, help="default: the recipe's")
    p.add_argument("--target", type=float, default=0.99, help="test accuracy to reach (default: 0.99)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast, CUDA only (default: the recipe's, on)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model in both loops")
    p.add_argument("--only", choices=("torchlab", "reference"), help="run one loop only")
    return p.parse_args(argv)


def prepare_torchvision_root(data_dir: str, root: Path) -> Path:
    """Write the four files, decompressed, to <root>/MNIST/raw/ as torchvision.datasets.MNIST expects."""
    import gzip

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stems in FILES.values():
        for stem in stems:
            source = find_file(data_dir, stem)
            opener = gzip.open if source.suffix == ".gz" else open
            with opener(source, "rb") as f:
                (raw / stem).write_bytes(f.read())
    return root


def test_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast) -> float:
    model.eval()
    correct = 0
    with torch.no_grad(), autocast():
        for start in range(0, len(x), 2000):
            correct += int((model(x[start : start + 2000]).argmax(1) == y[start : start + 2000]).sum())
    return correct / len(x)


def recipe(args: argparse.Namespace) -> mnist.MnistConfig:
    """The mnist recipe `--recipe` with this script's flags applied (a UsageError names a bad one)."""
    flags = dict(
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        threads=args.threads,
        amp=args.amp,
    )
    overrides = {name: value for name, value in flags.items() if value is not None}
    return torchlab.get_recipe(
        "mnist", getattr(args, "recipe", "default"), data_dir=args.data_dir, compile=args.compile, **overrides
    )


def fresh_model(cfg: mnist.MnistConfig, seed: int, device) -> nn.Module:
    seed_everything(seed)
    model, _ = mnist.make_model(cfg, classes=10)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def run_torchlab(cfg, args, device, x_train, y_train, x_test, y_test, autocast):
    """The Trainer over a TensorBatcher; returns [(cumulative train seconds, test accuracy)] per epoch."""
    channels_last = cfg.channels_last
    model = fresh_model(cfg, args.seed, device)
    train = TensorBatcher((x_train, y_train), cfg.batch_size, shuffle=True, device=device, seed=args.seed)
    optimizer, scheduler, interval = mnist.make_mnist_optimizer(model, cfg, len(train))
    x_test, y_test = x_test.to(device), y_test.to(device)
    if channels_last:
        x_test = x_test.contiguous(memory_format=torch.channels_last)
    points: list[tuple[float, float]] = []

    def score(trainer: Trainer, row: dict[str, float]) -> None:  # runs after the epoch's time was taken
        elapsed = (points[-1][0] if points else 0.0) + row["seconds"]
        points.append((elapsed, test_accuracy(trainer.net, x_test, y_test, autocast)))

    loss_fn = mnist.make_loss(10, cfg.loss, cfg.label_smoothing)
    trainer = Trainer(
        model,
        loss_fn,
        optimizer,
        metrics={"accuracy": Accuracy()},
        epochs=cfg.epochs,
        scheduler=scheduler,
        scheduler_interval=interval,
        device=device,
        amp=cfg.amp,
        channels_last=channels_last,
        compile=cfg.compile,
        progress=False,
        callbacks=[score],
    )
    trainer.fit(train)
    return points


def run_reference(cfg, args, device, root, mean, std, x_test, y_test, autocast):
    """pytorch/examples' loop: DataLoader over torchvision's MNIST, per-batch copies to the device."""
    from torchvision import datasets, transforms

    channels_last = cfg.channels_last
    model = fresh_model(cfg, args.seed, device)
    dataset = datasets.MNIST(
        str(root),
        train=True,
        download=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))]),
    )
    accelerated = device.type != "cpu"
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=True, num_workers=1 if accelerated else 0, pin_memory=accelerated
    )
    optimizer, scheduler, interval = mnist.make_mnist_optimizer(model, cfg, len(loader))
    net = torch.compile(model) if cfg.compile else model
    x_test, y_test = x_test.to(device), y_test.to(device)
    if channels_last:
        x_test = x_test.contiguous(memory_format=torch.channels_last)
    points: list[tuple[float, float]] = []
    elapsed = 0.0
    for _epoch in range(cfg.epochs):
        net.train()
        start = time.perf_counter()
        for batch_idx, (data, target) in enumerate(loader):
            data, target = data.to(device), target.to(device)
            if channels_last:
                data = data.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad()
            with autocast():
                loss = nn.functional.cross_entropy(net(data), target)
            loss.backward()
            optimizer.step()
            if scheduler is not None and interval == "batch":
                scheduler.step()
            if batch_idx % 10 == 0:
                loss.item()  # pytorch/examples logs the loss every 10 batches
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed += time.perf_counter() - start
        points.append((elapsed, test_accuracy(net, x_test, y_test, autocast)))
    return points


def time_to_target(points: list[tuple[float, float]], target: float) -> float | None:
    return next((seconds for seconds, acc in points if acc >= target), None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = recipe(args)
        device = pick_device(args.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        data = load_mnist(cfg.data_dir)
    except TorchlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    amp = cfg.amp and device.type == "cuda"  # bf16 autocast acts on CUDA only
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    mean, std = normalization_stats(data.x_train) if cfg.normalize else (0.0, 1.0)
    normalization = {"mean": mean, "std": std}
    x_train, x_test = normalize(data.x_train, normalization), normalize(data.x_test, normalization)
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, model {cfg.model}, {cfg.epochs} epochs of "
        f"batch {cfg.batch_size}, amp {amp}, channels_last {cfg.channels_last}, compile {cfg.compile}"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="torchlab-mnist-") as tmp:
        if args.only != "reference":
            results["torchlab"] = run_torchlab(cfg, args, device, x_train, data.y_train, x_test, data.y_test, autocast)
        if args.only != "torchlab":
            root = prepare_torchvision_root(args.data_dir, Path(tmp))
            results["reference"] = run_reference(cfg, args, device, root, mean, std, x_test, data.y_test, autocast)
    for name, points in results.items():
        for epoch, (seconds, acc) in enumerate(points, start=1):
            print(f"{name:9s} epoch {epoch}: {seconds:7.2f} s of training, test accuracy {acc:.4f}")
    reached = {name: time_to_target(points, args.target) for name, points in results.items()}
    for name, seconds in reached.items():
        shown = f"{seconds:.2f} s" if seconds is not None else f"not reached in {cfg.epochs} epochs"
        print(f"time to {args.target:.3f} test accuracy, {name}: {shown}")
    if len(reached) == 2 and None not in reached.values():
        print(f"speed-up (reference / torchlab): {reached['reference'] / reached['torchlab']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
