"""What a task's functions receive and return: a started `Run` (device picked, RNGs seeded,
torchrun joined, output folder checked) and its `RunResult`; `InferenceOptions` for evaluate
and predict. `start_run` makes a Run from `RunOptions`; torchlab.api calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.config import TrainConfig, as_dict
from torchlab.engine.checkpoint import CheckpointMeta
from torchlab.engine.metrics import Metric
from torchlab.engine.trainer import FitResult, Trainer
from torchlab.errors import UsageError
from torchlab.reporting.compare import is_metric_name
from torchlab.runtime import distributed
from torchlab.runtime.device import pick_device, seed_everything
from torchlab.runtime.output_folder import (
    check_checkpoint_every,
    check_output_folder,
    resolve_resume,
    restart_count,
)


@dataclass(frozen=True)
class RunOptions:
    """Where and how a run happens (not what it trains: that is the config)."""

    out: str | Path | None = None  # default: checkpoints/<task>
    device: str = "auto"
    seed: int = 0
    resume: bool | str = False  # True: from <out>/last.pt; "auto": when last.pt exists (torchrun restarts: always)
    progress: bool | None = None  # None: a bar when the terminal shows one
    figures: bool = True
    tensorboard: bool = False  # scalars and figures under <out>/tensorboard
    overwrite: bool = False  # replace a run already in `out` (its files are removed first)
    dry_run: bool = False  # one training step and one validation batch, nothing written (Trainer.dry_run)
    callbacks: tuple[Any, ...] = ()  # torchlab.Callback objects (or f(trainer, row)) the run's Trainer calls
    checkpoint_every: int = 1  # write last.pt (and best.pt) every N epochs and after the last: what a crash loses


@dataclass
class Run:
    """A run resolved for training: device picked, RNGs seeded, torchrun joined. Nothing written yet."""

    task: str
    recipe: str
    config: TrainConfig
    device: torch.device
    world: distributed.World
    out: Path
    seed: int
    resume: bool
    progress: bool | None
    figures: bool
    tensorboard: bool = False
    dry_run: bool = False
    callbacks: tuple[Any, ...] = ()
    checkpoint_every: int = 1
    overwrite: bool = False  # the folder's earlier run is removed before this one starts
    restart: int = 0  # how many times torchrun's elastic agent restarted this run's workers

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    def trainer(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        metrics: dict[str, Metric] | None = None,
        monitor: str = "val_loss",
        mode: str = "min",
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        meta: dict[str, Any] | None = None,
        restore_best: bool = True,
        checkpoint_every: int | None = None,
    ) -> Trainer:
        """A Trainer wired to this run's device, output folder and config.

        meta: the checkpoint's model_name and model_kwargs, and any other plain metadata the task's
        evaluate and predict read (normalization, classes, data, ...); see CheckpointMeta.
        checkpoint_every: None: the run's option (--checkpoint-every).
        """
        extra = dict(meta or {})  # model_name, model_kwargs and what the task's inference reads
        checkpoint_meta = CheckpointMeta(
            task=self.task,
            model_name=extra.pop("model_name", None),
            model_kwargs=extra.pop("model_kwargs", {}),
            recipe=self.recipe,
            seed=self.seed,
            config=as_dict(self.config),
            extra=extra,
        )
        return Trainer.from_config(
            self.config,
            model.to(self.device),
            loss_fn,
            optimizer,
            metrics=metrics,
            monitor=monitor,
            mode=mode,
            restore_best=restore_best,
            scheduler=scheduler,
            scheduler_interval=scheduler_interval,
            checkpoint_dir=self.out,
            checkpoint_meta=checkpoint_meta,
            checkpoint_every=self.checkpoint_every if checkpoint_every is None else checkpoint_every,
            device=self.device,
            progress=self.progress,
            dry_run=self.dry_run,
            callbacks=list(self.callbacks),
            tensorboard_dir=self.out / "tensorboard" if self.tensorboard else None,
        )

    def result(self, fit: FitResult | None, summary: dict[str, Any], figures: list[Path] | None = None) -> RunResult:
        """The RunResult of this run: `summary` is what the CLI prints, in order; its metrics (the numbers
        named like one: test_accuracy, train_loss, val_rmse_px) are the result's `metrics`."""
        best, last = self.out / "best.pt", self.out / "last.pt"
        if fit is not None and fit.stop_message:  # an early-stopping rule or the time budget ended the run
            summary = {**summary, "stopped": fit.stop_message}
        if self.tensorboard and figures and self.is_main:
            from torchlab.reporting.tensorboard import log_figures

            log_figures(self.out / "tensorboard", figures, step=len(fit.history) if fit else 0)
        metrics = {
            k: float(v)
            for k, v in summary.items()  # not counts, durations or config fields (fit_seconds, lr)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and is_metric_name(k)
        }
        return RunResult(
            task=self.task,
            recipe=self.recipe,
            config=self.config,
            metrics=metrics,
            best_checkpoint=best if best.exists() else None,
            last_checkpoint=last if last.exists() else None,
            figures=list(figures or []),
            history=list(fit.history) if fit else [],
            fit_seconds=fit.fit_seconds if fit else 0.0,
            summary=summary,
        )


@dataclass
class RunResult:
    """What `torchlab.train` returns."""

    task: str
    recipe: str
    config: TrainConfig
    metrics: dict[str, float]  # the summary's metrics (test_accuracy, ...): no counts, durations or fields
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    figures: list[Path]
    history: list[dict[str, float]]
    fit_seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferenceOptions:
    """Options of `torchlab.evaluate` / `torchlab.predict` (data location, batch size, outputs)."""

    data_dir: str = "data"
    data: str | None = None
    batch_size: int = 1024
    index: tuple[int, ...] = ()
    out: str | None = None
    format: str = "json"
    submission: str | None = None
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # faces given by hand: (x, y, w, h) in photo pixels
    detect: bool | None = None  # find faces in photos: None = when OpenCV is installed, True = must, False = never


def start_run(task: str, recipe: str, cfg: TrainConfig, options: RunOptions) -> Run:
    """Check the run options, pick the device, seed everything and join torchrun; write nothing."""
    if not (isinstance(options.seed, int) and 0 <= options.seed < 2**32):
        raise UsageError(f"--seed must be a whole number in 0..4294967295, got {options.seed!r}")
    device = pick_device(options.device or "auto")
    world = distributed.setup(device)
    seed_everything(options.seed + world.rank)
    out = Path(options.out) if options.out else Path("checkpoints") / task
    check_checkpoint_every(options.checkpoint_every)
    resume, overwrite = resolve_resume(out, options.resume, options.overwrite)  # a torchrun restart resumes
    check_output_folder(out, resume, overwrite)
    if options.tensorboard:
        from torchlab.reporting.tensorboard import require_tensorboard

        require_tensorboard()  # a missing package is a one-line error before anything runs
    return Run(
        task,
        recipe,
        cfg,
        device,
        world,
        out,
        options.seed,
        resume,
        options.progress,
        options.figures,
        options.tensorboard,
        options.dry_run,
        tuple(options.callbacks),
        options.checkpoint_every,
        overwrite,
        restart_count(),
    )
