"""Digit MLP: torchlab's default recipe over 5 seeds vs. a plain DataLoader loop and scikit-learn.

    python tools/bench_digits.py [--seeds 5]

Prints, per seed and as means: test accuracy and fit seconds for
  torchlab   `torchlab train digits` (Trainer, data on the device, checkpoints every epoch)
  reference  the same model/optimizer/schedule/training rows in a plain loop over a torch DataLoader
  sklearn    MLPClassifier(hidden_layer_sizes=(32,)) with its defaults
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from contextlib import redirect_stdout

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchlab.cli.main import main as torchlab_main
from torchlab.data.digits import load_digits_split
from torchlab.data.splits import split_indices
from torchlab.models import build_model


def run_torchlab(seed: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out, redirect_stdout(io.StringIO()) as buffer:
        torchlab_main(["train", "digits", "--seed", str(seed), "--out", out, "--no-figures", "--no-progress"])
    fields = dict(line.split(": ", 1) for line in buffer.getvalue().splitlines() if ": " in line)
    return float(fields["test_accuracy"]), float(fields["fit_seconds"])


def run_reference(seed: int, epochs: int = 20, lr: float = 3e-2, batch_size: int = 64) -> tuple[float, float]:
    """What most tutorials do: DataLoader over a TensorDataset, one optimizer step per batch."""
    torch.manual_seed(seed)
    data = load_digits_split()
    keep, _ = split_indices(len(data.x_train), 0.1, seed=seed)  # the same 90% torchlab trains on
    loader = DataLoader(TensorDataset(data.x_train[keep], data.y_train[keep]), batch_size=batch_size, shuffle=True)
    model = build_model("digit-mlp")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    return accuracy, seconds


def run_sklearn(seed: int) -> tuple[float, float]:
    import warnings

    from sklearn.neural_network import MLPClassifier

    data = load_digits_split()
    clf = MLPClassifier(hidden_layer_sizes=(32,), random_state=seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(data.x_train.numpy(), data.y_train.numpy())
    seconds = time.perf_counter() - start
    return float(clf.score(data.x_test.numpy(), data.y_test.numpy())), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = {}
    for name, fn in (("torchlab", run_torchlab), ("reference", run_reference), ("sklearn", run_sklearn)):
        runs = [fn(seed) for seed in range(args.seeds)]
        results[name] = runs
        accs = " ".join(f"{a:.4f}" for a, _ in runs)
        print(
            f"{name:<10} accuracy mean {statistics.mean(a for a, _ in runs):.4f} [{accs}]  "
            f"fit seconds mean {statistics.mean(s for _, s in runs):.3f} (max {max(s for _, s in runs):.3f})"
        )
    ratio = statistics.mean(s for _, s in results["reference"]) / statistics.mean(s for _, s in results["torchlab"])
    print(f"speed-up of torchlab over the reference loop (fit time, same recipe): {ratio:.2f}x")


if __name__ == "__main__":
    main()
