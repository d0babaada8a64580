"""What every trainable task shares: its recipe defaults, the common flags, and the
plumbing from parsed flags to a ready Trainer (device, seed, output folder, DDP)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab import distributed
from torchlab.device import pick_device, seed_everything
from torchlab.early_stopping import EarlyStopping
from torchlab.errors import UsageError
from torchlab.metrics import Metric
from torchlab.trainer import Trainer

# Hyper-parameters every recipe sets; the matching flags default to None = "from the recipe".
HPARAMS = ("epochs", "lr", "batch_size", "weight_decay", "patience")


@dataclass
class RunContext:
    """Where and how a training run happens, resolved from the command line."""

    device: torch.device
    world: distributed.World
    out: Path
    seed: int
    hparams: dict[str, Any]
    recipe: str
    figures: bool
    resume: bool

    @property
    def is_main(self) -> bool:
        return self.world.is_main


class Task:
    """A trainable task: data + model + loss + metrics + figures, driven from the CLI.

    Subclasses set `name`, `help`, `recipes` (recipe name -> hyper-parameters, at least
    "default") and implement `train`, and usually `evaluate` and `predict`.
    """

    name: str = ""
    help: str = ""
    recipes: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------- command line
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Task-specific flags (data paths, model choice, ...)."""

    def train(self, args: argparse.Namespace) -> dict[str, Any]:
        """Train, write checkpoints and figures; return what the CLI should print."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, meta: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
        """Metrics of a loaded checkpoint on this task's test split."""
        raise UsageError(f"task {self.name} has no evaluate command")

    def predict(self, model: nn.Module, meta: dict[str, Any], inputs: list[str], args: argparse.Namespace) -> str:
        """Run a loaded checkpoint on user inputs; return the text to print."""
        raise UsageError(f"task {self.name} has no predict command")

    # ------------------------------------------------------------------ helpers
    def recipe_help(self) -> str:
        parts = []
        for name, hp in self.recipes.items():
            shown = ", ".join(f"{k}={v}" for k, v in hp.items() if k in HPARAMS)
            parts.append(f"{name}: {shown}")
        return "; ".join(parts)

    def context(self, args: argparse.Namespace) -> RunContext:
        """Validate the common flags, then pick the device, seed everything and join torchrun.

        Nothing is written to disk here; the output folder appears with the first file written.
        """
        recipe = getattr(args, "recipe", None) or "default"
        if recipe not in self.recipes:
            raise UsageError(f"unknown recipe {recipe!r} for {self.name}; choose one of: {', '.join(self.recipes)}")
        hparams = dict(self.recipes[recipe])
        for key in HPARAMS:
            value = getattr(args, key, None)
            if value is not None:
                hparams[key] = value
        validate_hparams(hparams)
        validate_hparams({key: getattr(args, key, None) for key in ("min_delta", "grad_clip", "seed")})
        device = pick_device(getattr(args, "device", "auto") or "auto")
        world = distributed.setup(device)
        seed = int(getattr(args, "seed", 0) or 0)
        seed_everything(seed + world.rank)
        out = Path(getattr(args, "out", None) or Path("checkpoints") / self.name)
        resume = bool(getattr(args, "resume", False))
        if resume and not (out / "last.pt").exists():
            raise UsageError(f"--resume was given but {out / 'last.pt'} does not exist; drop --resume or fix --out")
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file; give a folder for checkpoints, history and figures")
        # the folder itself appears with the first checkpoint: a run that fails on its data leaves nothing
        return RunContext(device, world, out, seed, hparams, recipe, not getattr(args, "no_figures", False), resume)

    def make_trainer(
        self,
        ctx: RunContext,
        args: argparse.Namespace,
        model: nn.Module,
        loss_fn,
        optimizer: torch.optim.Optimizer,
        *,
        metrics: dict[str, Metric] | None = None,
        monitor: str = "val_loss",
        mode: str = "min",
        scheduler=None,
        scheduler_interval: str = "epoch",
        meta: dict[str, Any] | None = None,
        restore_best: bool = True,
    ) -> Trainer:
        """A Trainer wired to the run's device, output folder and common flags."""
        patience = ctx.hparams.get("patience")
        early = EarlyStopping(monitor, mode, patience=patience, min_delta=getattr(args, "min_delta", 0.0) or 0.0,
                              restore_best_weights=restore_best)
        checkpoint_meta = {"task": self.name, "recipe": ctx.recipe, "seed": ctx.seed,
                           "hparams": dict(ctx.hparams), **(meta or {})}
        progress = False if getattr(args, "no_progress", False) else None
        return Trainer(
            model=model.to(ctx.device),
            loss_fn=loss_fn,
            optimizer=optimizer,
            metrics=metrics or {},
            epochs=int(ctx.hparams["epochs"]),
            scheduler=scheduler,
            scheduler_interval=scheduler_interval,
            early_stopping=early,
            checkpoint_dir=ctx.out,
            checkpoint_meta=checkpoint_meta,
            device=ctx.device,
            grad_clip=getattr(args, "grad_clip", None),
            amp=bool(getattr(args, "amp", False)),
            channels_last=bool(getattr(args, "channels_last", False)),
            compile=bool(getattr(args, "compile", False)),
            progress=progress,
        )


def validate_hparams(hp: dict[str, Any]) -> None:
    """Reject values no training can use, with a message naming the flag."""
    checks = [
        ("epochs", "--epochs", lambda v: isinstance(v, int) and v >= 1, "a whole number >= 1"),
        ("batch_size", "--batch-size", lambda v: v is None or (isinstance(v, int) and v >= 1), "a whole number >= 1"),
        ("lr", "--lr", lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v > 0, "a finite number > 0"),
        ("weight_decay", "--weight-decay", lambda v: v is None or (math.isfinite(v) and v >= 0), "a finite number >= 0"),
        ("patience", "--patience", lambda v: v is None or (isinstance(v, int) and v >= 0), "a whole number >= 0"),
        ("min_delta", "--min-delta", lambda v: v is None or (math.isfinite(v) and v >= 0), "a finite number >= 0"),
        ("grad_clip", "--grad-clip", lambda v: v is None or (math.isfinite(v) and v > 0), "a finite number > 0"),
        ("seed", "--seed", lambda v: v is None or 0 <= v < 2**32, "a whole number in 0..4294967295"),
    ]
    for key, flag, ok, want in checks:
        if key in hp and not ok(hp[key]):
            raise UsageError(f"{flag} must be {want}, got {hp[key]!r}")


def add_common_arguments(parser: argparse.ArgumentParser, task: Task) -> None:
    """Flags every `torchlab train TASK` takes."""
    g = parser.add_argument_group("training (defaults come from the recipe)")
    g.add_argument("--recipe", default="default", choices=list(task.recipes),
                   help=f"hyper-parameter set: {task.recipe_help()}")
    g.add_argument("--epochs", type=int, help="maximum number of epochs")
    g.add_argument("--lr", type=float, help="(peak) learning rate")
    g.add_argument("--batch-size", type=int, help="samples per batch and per process")
    g.add_argument("--weight-decay", type=float, help="decoupled weight decay (AdamW) or L2 (SGD)")
    g.add_argument("--patience", type=int, help="early stopping: epochs without improvement before stopping")
    g.add_argument("--min-delta", type=float, default=0.0, help="early stopping: smallest change that counts as improvement")
    g.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm to this value")
    r = parser.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto = accelerator if present)")
    r.add_argument("--seed", type=int, default=0, help="seed for Python, NumPy and torch (default: 0)")
    r.add_argument("--out", help=f"output folder for checkpoints, history and figures (default: checkpoints/{task.name})")
    r.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    r.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--channels-last", action="store_true", help="channels-last memory format for conv nets")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("--no-figures", action="store_true", help="skip writing figures")
