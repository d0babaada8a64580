"""Which MNIST recipe reaches 99% validation accuracy in the fewest CPU seconds: a study on held-out images.

    python tools/study_mnist.py --data-dir ../shared/data/mnist --variants baseline tuomaso stride --epochs 1 2 3
    python tools/study_mnist.py --data-dir ../shared/data/mnist --variants fast --epochs 1 --seeds 0 1 2
    python tools/study_mnist.py --list

Each variant is a model and a recipe (batch, optimizer, learning rate, one-cycle schedule, and
extras: label smoothing, an EMA of the weights, Lookahead, test-time shifts, a frozen whitening
first layer, a larger learning rate for biases and batch-norm parameters). It is trained with a
plain loop over images that live in memory as one tensor (no DataLoader, no checkpoints) on the
first 55,000 training images; the last 5,000 are the validation images it is scored on. The MNIST
test set is never read. `--epochs 1 2 3` trains three runs per seed, each with its one-cycle
schedule ending at that epoch (what a recipe of that length does), and reports the validation
accuracy at the end of each.

Time: each row gives the epoch cost (the fastest of a few short windows of steps on
`--cost-threads` threads, times the steps of an epoch: other processes only ever slow a window
down, so rows measured at different loads compare) and, per run, that cost times its epochs and
the run's own wall seconds of training (scoring is not timed). One Markdown row per variant and
seed, with the 1-minute load average when it started, then each variant's mean and spread over
the seeds.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from torchlab.data.mnist import load_mnist, normalization_stats
from torchlab.models import build_model

VAL_SIZE = 5000


# ------------------------------------------------------------------ models
def shifted_views(images: torch.Tensor, pixels: int = 1) -> list[torch.Tensor]:
    """The images and their copies moved by 1..`pixels` pixels up, down, left and right (test-time augmentation).

    `torch.roll` wraps the moved-out border around, which for MNIST (digits inside a 20x20 box,
    a background border of 4 pixels) only moves background.
    """
    views = [images]
    for step in range(1, pixels + 1):
        for shift in (step, -step):
            views += [torch.roll(images, shift, dims=2), torch.roll(images, shift, dims=3)]
    return views


@torch.no_grad()
def whitening_filters(images: torch.Tensor, kernel: int, channels: int, eps: float = 1e-2) -> torch.Tensor:
    """(channels, 1, kernel, kernel) conv filters that whiten the images' kernel x kernel patches.

    The top `channels // 2` eigenvectors of the patch covariance, each scaled by 1/sqrt(eigenvalue
    + eps), and their negatives (so a ReLU after the conv keeps both signs), as in airbench's frozen
    first layer.
    """
    if channels % 2 or channels // 2 > kernel * kernel:
        raise ValueError(f"channels must be even and at most 2 x {kernel * kernel}, got {channels}")
    patches = nn.functional.unfold(images.double(), kernel).transpose(1, 2).reshape(-1, kernel * kernel)
    patches = patches - patches.mean(0)
    values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    top = vectors[:, -(channels // 2) :].flip(1) / (values[-(channels // 2) :].flip(0) + eps).sqrt()
    filters = top.T.reshape(-1, 1, kernel, kernel)
    return torch.cat([filters, -filters]).to(images.dtype)


def tuomaso_net(c1: int = 24, c2: int = 32, hidden: int = 256, stride: bool = False) -> nn.Module:
    """train_mnist_fast's layout: conv 5x5 + pool, conv 3x3 + pool (max-pool before ReLU), FC 800->256->10.

    stride=True replaces the first pooling by a stride-2 first convolution (a quarter of its work).
    """
    first = [nn.Conv2d(1, c1, 5, stride=2)] if stride else [nn.Conv2d(1, c1, 5), nn.MaxPool2d(2)]
    return nn.Sequential(
        *first,
        nn.ReLU(),  # c1 x 12 x 12
        nn.Conv2d(c1, c2, 3),
        nn.MaxPool2d(2),
        nn.ReLU(),  # c2 x 5 x 5
        nn.Flatten(),
        nn.Linear(c2 * 25, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def patch_net(c1: int = 24, c2: int = 48, hidden: int = 256, kernel: int = 4, bn: bool = False) -> nn.Module:
    """A 'patchify' stem (kernel x kernel, stride 2) then one 3x3 conv + pool and a dense head."""
    norm = [nn.BatchNorm2d(c2)] if bn else []
    return nn.Sequential(
        nn.Conv2d(1, c1, kernel, stride=2, padding=(kernel - 1) // 2),
        nn.ReLU(),  # c1 x 13..14
        nn.Conv2d(c1, c2, 3),
        nn.MaxPool2d(2),
        *norm,
        nn.ReLU(),  # c2 x 5..6
        nn.Flatten(),
        nn.LazyLinear(hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def whitened_net(c2: int = 32, hidden: int = 256, kernel: int = 5, channels: int = 24) -> nn.Module:
    """tuomaso_net with a frozen first conv: stride 2, its filters the whitening of the training patches."""
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel, stride=2),
        nn.ReLU(),
        nn.Conv2d(channels, c2, 3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.LazyLinear(hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def library_model(name: str, **kwargs) -> Callable[[], nn.Module]:
    return lambda: build_model(name, **kwargs)


MODELS: dict[str, Callable[[], nn.Module]] = {
    "mnist-cnn": library_model("mnist-cnn"),
    "mnist-fast": library_model("mnist-fast"),
    "tuomaso": tuomaso_net,
    "tuomaso-stride": lambda: tuomaso_net(stride=True),
    "tuomaso-stride-16-32-128": lambda: tuomaso_net(16, 32, 128, stride=True),
    "tuomaso-stride-24-48-256": lambda: tuomaso_net(24, 48, 256, stride=True),
    "patch4-24-48": lambda: patch_net(24, 48, 256, 4),
    "patch4-16-32": lambda: patch_net(16, 32, 128, 4),
    "patch4-24-48-bn": lambda: patch_net(24, 48, 256, 4, bn=True),
    "whitened": whitened_net,
}


# ----------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """A model and the recipe that trains it."""

    model: str
    batch_size: int = 128
    lr: float = 2e-2
    optimizer: str = "adamw"  # adamw | adam
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    warmup: float = 0.25  # one-cycle: share of the steps raising the learning rate
    label_smoothing: float = 0.0
    ema: float | None = None  # decay of an exponential moving average of the weights (scored instead)
    lookahead: int | None = None  # Lookahead: every k steps move the slow weights half-way to the fast ones
    tta: int = 0  # test-time augmentation: also score +-tta pixel shifts, average the logits
    bias_lr: float = 1.0  # learning-rate multiple for biases and batch-norm parameters
    whiten: bool = False  # freeze the first conv to the whitening filters of training patches
    note: str = ""


BASE = Variant("mnist-cnn", note="today's default recipe (mnist-cnn 8-16-32, AdamW 0.02, batch 128)")
TUOMASO = Variant(
    "tuomaso",
    batch_size=256,
    lr=1e-2,
    optimizer="adam",
    betas=(0.7, 0.9),
    weight_decay=0.0,
    warmup=0.2,
    note="train_mnist_fast: conv24 5x5 + pool, conv32 + pool, 800->256->10, Adam(0.7, 0.9)",
)
STRIDE = replace(TUOMASO, model="tuomaso-stride", note="same, first pool replaced by a stride-2 first conv")
# The shipped `fast` recipe (beta1 does not matter: one-cycle cycles it). Same net and order of layers as
# "stride", so with label smoothing it trains exactly as "stride-smooth".
FAST = replace(
    STRIDE,
    model="mnist-fast",
    betas=(0.9, 0.9),
    label_smoothing=0.1,
    note="the shipped recipe `fast`: mnist-fast, Adam lr 0.01, beta2 0.9, label smoothing 0.1",
)

VARIANTS: dict[str, Variant] = {
    "baseline": BASE,
    "baseline-b256": replace(BASE, batch_size=256, lr=3e-2, note="batch 256, lr 0.03"),
    "tuomaso": TUOMASO,
    "tuomaso-adamw": replace(
        TUOMASO, optimizer="adamw", betas=(0.9, 0.999), weight_decay=1e-2, note="same net, default AdamW betas"
    ),
    "tuomaso-b128": replace(TUOMASO, batch_size=128, note="batch 128"),
    "tuomaso-b512": replace(TUOMASO, batch_size=512, lr=2e-2, note="batch 512, lr 0.02"),
    "stride": STRIDE,
    "stride-lr5e-3": replace(STRIDE, lr=5e-3, note="lr 0.005"),
    "stride-lr2e-2": replace(STRIDE, lr=2e-2, note="lr 0.02"),
    "stride-b128": replace(STRIDE, batch_size=128, note="batch 128"),
    "stride-16-32-128": replace(STRIDE, model="tuomaso-stride-16-32-128", note="narrower: 16, 32, hidden 128"),
    "stride-24-48-256": replace(STRIDE, model="tuomaso-stride-24-48-256", note="wider second conv: 48"),
    "patch4": replace(STRIDE, model="patch4-24-48", note="4x4 stride-2 patch stem, conv 48, pool, 1200->256"),
    "patch4-small": replace(STRIDE, model="patch4-16-32", note="4x4 patch stem 16, conv 32, hidden 128"),
    "patch4-bn": replace(STRIDE, model="patch4-24-48-bn", note="patch stem + batch norm after the pool"),
    "patch4-bn-biaslr": replace(
        STRIDE, model="patch4-24-48-bn", bias_lr=64.0, note="+ biases and batch-norm parameters at 64x the lr"
    ),
    "stride-smooth": replace(STRIDE, label_smoothing=0.1, note="label smoothing 0.1"),
    "stride-smooth-lr2e-2": replace(STRIDE, label_smoothing=0.1, lr=2e-2, note="label smoothing 0.1, lr 0.02"),
    "stride-smooth-0.2": replace(STRIDE, label_smoothing=0.2, note="label smoothing 0.2"),
    "stride-smooth-tta": replace(STRIDE, label_smoothing=0.1, tta=1, note="label smoothing 0.1 and +-1 px test shifts"),
    "baseline-smooth": replace(BASE, label_smoothing=0.1, note="today's default recipe, label smoothing 0.1"),
    "baseline-b256-smooth": replace(
        BASE, batch_size=256, lr=3e-2, label_smoothing=0.1, note="batch 256, lr 0.03, label smoothing 0.1"
    ),
    "stride-ema": replace(STRIDE, ema=0.99, note="scored with an EMA of the weights (decay 0.99)"),
    "stride-lookahead": replace(STRIDE, lookahead=5, note="Lookahead k=5, alpha 0.5"),
    "stride-tta": replace(STRIDE, tta=1, note="test-time shifts of +-1 px (5 views)"),
    "stride-tta2": replace(STRIDE, tta=2, note="test-time shifts of +-1 and +-2 px (9 views)"),
    "whitened": replace(STRIDE, model="whitened", whiten=True, note="frozen 5x5 whitening first conv (stride 2)"),
    "whitened-smooth": replace(
        STRIDE,
        model="whitened",
        whiten=True,
        label_smoothing=0.1,
        note="frozen whitening first conv and label smoothing 0.1",
    ),
    "fast": FAST,
    "fast-beta2-0.999": replace(FAST, betas=(0.9, 0.999), note="the shipped recipe with Adam's default beta2 0.999"),
}


# ------------------------------------------------------------------ pieces
def make_optimizer(model: nn.Module, v: Variant) -> torch.optim.Optimizer:
    """Adam/AdamW (fused), biases and 1-d parameters optionally at `bias_lr` times the learning rate."""
    params = [p for p in model.parameters() if p.requires_grad]
    weights = [p for p in params if p.dim() > 1]
    others = [p for p in params if p.dim() <= 1]
    groups = [{"params": weights}, {"params": others, "lr": v.lr * v.bias_lr}]
    kind = torch.optim.AdamW if v.optimizer == "adamw" else torch.optim.Adam
    optimizer = kind(groups, lr=v.lr, betas=v.betas, weight_decay=v.weight_decay, fused=True)
    return optimizer


def one_cycle(optimizer: torch.optim.Optimizer, v: Variant, total_steps: int):
    peaks = [group["lr"] for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=v.warmup)


class Averager:
    """An exponential moving average of the model's parameters and buffers, updated after each step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: t.detach().clone() for k, t in model.state_dict().items()}
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))  # warm up: early weights fade fast
        for k, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                self.shadow[k].lerp_(t, 1 - decay)
            else:
                self.shadow[k].copy_(t)


class Lookahead:
    """Every k optimizer steps: slow += alpha (fast - slow), fast = slow (Zhang et al., 2019)."""

    def __init__(self, model: nn.Module, k: int, alpha: float = 0.5) -> None:
        self.k, self.alpha, self.steps = k, alpha, 0
        self.slow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        if self.steps % self.k:
            return
        for slow, fast in zip(self.slow, model.parameters()):
            slow.lerp_(fast, self.alpha)
            fast.copy_(slow)


@torch.no_grad()
def val_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, tta: int) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), 1000):
        xb = x[start : start + 1000]
        logits = sum(model(view) for view in shifted_views(xb, tta)) if tta else model(xb)
        correct += int((logits.argmax(1) == y[start : start + 1000]).sum())
    return correct / len(x)


def build(v: Variant, x: torch.Tensor) -> nn.Module:
    """The variant's model, its lazy layers materialized and (whiten) its first conv frozen to whitening filters."""
    model = MODELS[v.model]()
    model(x[:2])
    if v.whiten:
        first = model[0]
        first.weight.data.copy_(whitening_filters(x[:10000], first.kernel_size[0], first.out_channels))
        first.bias.data.zero_()
        first.requires_grad_(False)
    return model


def warm_up(model: nn.Module, v: Variant, x: torch.Tensor, y: torch.Tensor, steps: int = 3) -> None:
    """A few untimed steps on a copy of the model: one-off costs (kernel selection, thread start) leave the timing."""
    net = copy.deepcopy(model)
    optimizer = make_optimizer(net, v)
    for _ in range(steps):
        F.cross_entropy(net(x[: v.batch_size]), y[: v.batch_size]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def train_run(
    v: Variant, epochs: int, seed: int, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor
) -> tuple[float, float]:
    """Train `v` for `epochs` epochs; (wall seconds of training, validation accuracy at the end)."""
    torch.manual_seed(seed)
    model = build(v, x)
    warm_up(model, v, x, y)
    optimizer = make_optimizer(model, v)
    steps = math.ceil(len(x) / v.batch_size)
    scheduler = one_cycle(optimizer, v, epochs * steps)
    ema = Averager(model, v.ema) if v.ema else None
    lookahead = Lookahead(model, v.lookahead) if v.lookahead else None
    generator = torch.Generator().manual_seed(seed)
    seconds = 0.0
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=generator)
        for i in range(steps):
            idx = order[i * v.batch_size : (i + 1) * v.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=v.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if lookahead is not None:
                lookahead.update(model)
            if ema is not None:
                ema.update(model)
        seconds += time.perf_counter() - start
    if ema is not None:
        model.load_state_dict(ema.shadow)
    return seconds, val_accuracy(model, x_val, y_val, v.tta)


def epoch_cost(v: Variant, x: torch.Tensor, y: torch.Tensor, threads: int, windows: int = 3, steps: int = 8) -> float:
    """Seconds one training epoch of `v` takes on `threads` threads: the fastest of `windows` runs of `steps` steps.

    The fastest window is the machine's quiet speed: other processes only ever slow a window down.
    """
    used = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(v, x)
    optimizer = make_optimizer(model, v)
    best = math.inf
    for window in range(windows + 1):  # the first window warms up
        start = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (v.batch_size,))
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=v.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if window:
            best = min(best, (time.perf_counter() - start) / steps)
    torch.set_num_threads(used)
    return best * math.ceil(len(x) / v.batch_size)


def load_average() -> float:
    return os.getloadavg()[0]


@dataclass
class Row:
    """One variant and seed: the epoch cost, and per run length (wall seconds, validation accuracy)."""

    name: str
    seed: int
    load: float
    epoch_seconds: float
    points: dict[int, tuple[float, float]] = field(default_factory=dict)


def markdown(row: Row, epochs: list[int]) -> str:
    cells = [f"{e * row.epoch_seconds:.2f} s, **{row.points[e][1]:.4f}** ({row.points[e][0]:.1f} s)" for e in epochs]
    return f"| {row.name} | {row.seed} | {row.epoch_seconds:.2f} s | {' | '.join(cells)} | {row.load:.2f} |"


def summary(name: str, rows: list[Row], epochs: list[int]) -> str:
    cells = []
    for e in epochs:
        accs = [r.points[e][1] for r in rows]
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        seconds = e * statistics.mean(r.epoch_seconds for r in rows)
        cells.append(f"{seconds:.2f} s, **{statistics.mean(accs):.4f}** ± {spread:.4f} (min {min(accs):.4f})")
    return f"| {name} | mean of {len(rows)} | | {' | '.join(cells)} | |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data", help="folder with the MNIST IDX files")
    p.add_argument("--variants", nargs="+", default=["baseline", "tuomaso", "stride"], help="see --list")
    p.add_argument("--epochs", nargs="+", type=int, default=[1, 2, 3], help="schedule lengths to train (default 1 2 3)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for the runs (default 2)")
    p.add_argument(
        "--cost-threads", type=int, default=2, help="torch CPU threads the epoch cost is timed on (default 2)"
    )
    p.add_argument("--list", action="store_true", help="list the variants and exit")
    args = p.parse_args(argv)
    if args.list:
        for name, v in VARIANTS.items():
            print(f"{name:20s} {v.note}")
        return 0
    unknown = [n for n in args.variants if n not in VARIANTS]
    if unknown:
        print(f"error: unknown variants {unknown}; see --list", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    data = load_mnist(args.data_dir)
    x_all, y_all = data.x_train, data.y_train
    x, y, x_val, y_val = x_all[:-VAL_SIZE], y_all[:-VAL_SIZE], x_all[-VAL_SIZE:], y_all[-VAL_SIZE:]
    mean, std = normalization_stats(x)
    x, x_val = ((x - mean) / std).contiguous(), ((x_val - mean) / std).contiguous()
    print(
        f"{len(x)} training and {len(x_val)} validation images, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    header = " | ".join(f"{e}-epoch run: s, val acc (wall s)" for e in args.epochs)
    print(f"| variant | seed | epoch cost | {header} | load |\n|{' --- |' * (len(args.epochs) + 4)}")
    results: dict[str, list[Row]] = {}
    for name in args.variants:
        for seed in args.seeds:
            row = Row(name, seed, load_average(), epoch_cost(VARIANTS[name], x, y, args.cost_threads))
            for e in args.epochs:
                row.points[e] = train_run(VARIANTS[name], e, seed, x, y, x_val, y_val)
            results.setdefault(name, []).append(row)
            print(markdown(row, args.epochs), flush=True)
    if len(args.seeds) > 1:
        print()
        for name, rows in results.items():
            print(summary(name, rows, args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
