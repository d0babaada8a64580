"""The one training loop every torchlab model goes through.

    trainer = Trainer(model, loss_fn, optimizer, metrics={"accuracy": Accuracy()},
                      epochs=30, early_stopping=EarlyStopping("val_accuracy", "max", patience=5),
                      checkpoint_dir="runs/mine", checkpoint_meta=CheckpointMeta(model_name="my-net"))
    result = trainer.fit(train_batches, val_batches)

Each epoch: train on every batch, evaluate on the validation batches, append a history row,
update early stopping, and write `last.pt` (and `best.pt` on improvement) and `history.csv`
atomically. `fit(..., resume=True)` continues from `last.pt` exactly where it stopped.
Under torchrun the model is wrapped in DistributedDataParallel, metrics are summed over
ranks, rank 0 alone writes files, and rank 0's early-stopping decision is broadcast.
Evaluation calls the unwrapped model (no gradient sync), so ranks may hold shards of different
sizes there; training needs the same number of steps on every rank and `fit` checks it.

The loop is all here; its helpers have a module each: totals.py (an epoch's loss and metric
sums), resume.py (a run brought back from last.pt) and checkpoint_writer.py (the files).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.engine.checkpoint import CheckpointMeta
from torchlab.engine.checkpoint_writer import CheckpointWriter
from torchlab.engine.early_stopping import EarlyStopping
from torchlab.engine.metrics import Metric
from torchlab.engine.resume import restore, resume_path
from torchlab.engine.totals import Totals
from torchlab.errors import NonFiniteLoss, FieldName, TrainingError
from torchlab.reporting.progress import EpochProgress
from torchlab.reporting.tensorboard import TensorBoardLogger, require_tensorboard
from torchlab.runtime import distributed
from torchlab.runtime.device import rng_state

_NO_AUTOCAST = contextlib.nullcontext()  # reusable: one object for every step
LossFn = Callable[..., torch.Tensor]
Batches = Iterable[tuple[torch.Tensor, ...]]
EpochCallback = Callable[["Trainer", dict[str, float]], None]
# What a non-finite loss suggests changing, naming config fields (the CLI writes them --lr, --grad-clip).
SMALLER_STEPS = ("try a lower learning rate (", FieldName("lr"), ") or gradient clipping (", FieldName("grad_clip"), ")")
BAD_VALIDATION_DATA = ("the training loss is finite, so the validation data hold values the model cannot score",)


@dataclass
class FitResult:
    """What `Trainer.fit` returns: the history and where the run ended."""

    history: list[dict[str, float]]
    best_value: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    fit_seconds: float
    checkpoint_dir: Path | None = None

    @property
    def last(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


@dataclass
class Trainer:
    """Train `model` with `loss_fn(output, *targets)` and `optimizer`; see the module docstring.

    Batches are tuples `(inputs, *targets)`: a TensorBatcher, a DataLoader, or any iterable.

    progress: where stderr is a terminal, a per-batch bar with total and ETA inside each epoch,
    replaced at the epoch's end by one kept line with its losses and validation metrics. Where
    stderr is not a terminal (a file, a pipe, CI, nohup), `progress=True` writes that kept line
    alone, one plain line per epoch; `None` (the default) writes nothing there, so a library call
    stays quiet; `False` never writes. Only rank 0 reports (see torchlab/reporting/progress.py).

    tensorboard_dir: also write every history quantity per epoch and the learning rate per step
    there as TensorBoard scalars (rank 0; needs `pip install torchlab[tensorboard]`).
    """

    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    epochs: int = 10
    scheduler: Any = None
    scheduler_interval: str = "epoch"  # "epoch" or "batch"
    early_stopping: EarlyStopping | None = None
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_meta: CheckpointMeta | Mapping[str, Any] = field(default_factory=CheckpointMeta)  # or its dict
    checkpoint_every: int = 1  # write last.pt (and best.pt) every N epochs and after the last; 0: never during fit
    device: torch.device | str = "cpu"
    grad_clip: float | None = None
    amp: bool = False  # bf16 autocast, CUDA only
    channels_last: bool = False
    compile: bool = False
    progress: bool | None = None  # see the class docstring
    train_metrics: bool = True
    callbacks: list[EpochCallback] = field(default_factory=list)
    tensorboard_dir: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if self.scheduler_interval not in ("epoch", "batch"):
            raise ValueError("scheduler_interval must be 'epoch' or 'batch'")
        self.device = torch.device(self.device)
        self.world = distributed.current()
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        # Two names for the model: `model` is the plain nn.Module (what is saved and returned);
        # `wrapped_model` is what the training loop calls (maybe compiled, maybe DDP-wrapped).
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        compiled = torch.compile(self.model) if self.compile else self.model
        # Evaluation needs no gradient sync, so it skips the DDP wrapper: ranks may then hold
        # shards of different sizes (each sample counted once) without waiting on each other.
        self.eval_model = compiled
        self.wrapped_model = compiled
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped_model = nn.parallel.DistributedDataParallel(compiled, device_ids=ids)
        if self.checkpoint_every < 0:
            raise ValueError("checkpoint_every must be >= 0 (0: write checkpoints only when asked)")
        self._default_monitor = self.early_stopping is None
        if self.early_stopping is None:  # no stopping; track val_loss (train_loss without validation data)
            self.early_stopping = EarlyStopping("val_loss", "min", patience=None, restore_best_weights=False)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)
        self.checkpoint_meta = CheckpointMeta.of(self.checkpoint_meta)
        self._tensorboard: TensorBoardLogger | None = None
        self._step = 0  # optimizer steps taken, counted from the first epoch (TensorBoard's x axis)
        if self.tensorboard_dir is not None:
            require_tensorboard()  # before any training: a missing package is a one-line error

    # ----------------------------------------------------------------- batches
    def _autocast(self):
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return _NO_AUTOCAST

    def _to_device(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        device = self.device
        if any(t.device != device for t in batch):  # a DataLoader's CPU batch; TensorBatcher's are there already
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
        if self.channels_last and batch[0].dim() == 4:
            batch = (batch[0].contiguous(memory_format=torch.channels_last),) + batch[1:]
        return batch

    # ------------------------------------------------------------------- epochs
    def train_epoch(self, batches: Batches, epoch: int, progress: EpochProgress | None = None) -> dict[str, float]:
        """One pass over the training batches; returns mean loss (and metrics) over the samples."""
        self.wrapped_model.train()
        _set_epoch(batches, epoch)
        totals = Totals(self.metrics if self.train_metrics else {}, self.device)
        if progress is not None:
            progress.start_epoch(epoch, _length(batches))
        for batch in batches:
            inputs, *targets = self._to_device(batch)
            with self._autocast():
                output = self.wrapped_model(inputs)
                loss = self.loss_fn(output, *targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            if self._tensorboard is not None:
                self._step += 1
                self._tensorboard.log_step(self._step, self.optimizer.param_groups[0]["lr"])
            self.optimizer.step()
            if self.scheduler is not None and self.scheduler_interval == "batch":
                self.scheduler.step()
            totals.add(loss, output, targets)
            if progress is not None:
                progress.step(loss)  # reads the loss off the device at most twice a second
        return totals.summarize("train_")

    @torch.no_grad()
    def evaluate(self, batches: Batches, prefix: str = "val_") -> dict[str, float]:
        """Mean loss and metrics over `batches` in eval mode (no gradients)."""
        self.wrapped_model.eval()
        totals = Totals(self.metrics, self.device)
        for batch in batches:
            inputs, *targets = self._to_device(batch)
            with self._autocast():
                output = self.eval_model(inputs)
                loss = self.loss_fn(output, *targets)
            totals.add(loss, output.float(), targets)
        return totals.summarize(prefix)

    # ---------------------------------------------------------------------- fit
    def fit(self, train: Batches, val: Batches | None = None, *, resume: bool | str | os.PathLike = False) -> FitResult:
        """Train for `self.epochs` epochs (or until early stopping); see the module docstring.

        resume: True continues from `<checkpoint_dir>/last.pt`; a path continues from that file.
        """
        es = self.early_stopping
        if val is None and self._default_monitor:
            es.monitor = "train_loss"
        if val is None and es.monitor.startswith("val_"):
            raise ValueError(f"early stopping monitors {es.monitor!r} but no validation data was given")
        self._check_equal_steps(train)
        if resume:
            self._resume(resume, train)
        writer = None
        if self.checkpoint_dir is not None and self.world.is_main:  # rank 0 writes the files
            writer = CheckpointWriter(self.checkpoint_dir, self.checkpoint_every, self.epochs)
        progress = EpochProgress.create(self.progress, self.epochs) if self.world.is_main else None
        if self.tensorboard_dir is not None and self.world.is_main:
            self._tensorboard = TensorBoardLogger(self.tensorboard_dir)
            self._step = self.start_epoch * (_length(train) or 0)
        started = time.perf_counter()
        try:
            for epoch in range(self.start_epoch, self.epochs):
                if es.should_stop:
                    break
                t0 = time.perf_counter()
                row: dict[str, float] = {"epoch": epoch + 1}
                row.update(self.train_epoch(train, epoch, progress))
                if val is not None:
                    if progress is not None:
                        progress.validating()
                    row.update(self.evaluate(val))
                if self.scheduler is not None and self.scheduler_interval == "epoch":
                    self._step_epoch_scheduler(row)
                row["lr"] = self.optimizer.param_groups[0]["lr"]
                row["seconds"] = time.perf_counter() - t0
                self._check_finite(row, epoch)
                self.history.append(row)
                if self._tensorboard is not None:
                    self._tensorboard.log_epoch(row)
                improved = self._track_best(row, epoch)
                if writer is not None and writer.due(epoch, es.should_stop):
                    writer.write(self.checkpoint(epoch), self.history, improved)
                stop = distributed.broadcast_flag(es.should_stop, self.device)
                if stop != es.should_stop:  # every rank adopts rank 0's decision
                    es.stopped_epoch = epoch if stop else None
                for callback in self.callbacks:
                    callback(self, row)
                if progress is not None:
                    progress.end_epoch(row)
                    if es.should_stop:
                        progress.write(f"early stopping: {es.monitor} has not improved since epoch {es.best_epoch + 1} "
                                       f"(best {es.best:.4g})")
                if es.should_stop:
                    break
        finally:
            if progress is not None:
                progress.close()
            if self._tensorboard is not None:
                self._tensorboard.close()
                self._tensorboard = None
        fit_seconds = time.perf_counter() - started
        if es.restore_best_weights and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        return FitResult(
            history=list(self.history),
            best_value=es.best,
            best_epoch=es.best_epoch + 1,
            epochs_run=len(self.history),
            stopped_early=es.should_stop,
            fit_seconds=fit_seconds,
            checkpoint_dir=self.checkpoint_dir,
        )

    # ------------------------------------------------------------------ helpers
    def _check_equal_steps(self, train: Batches) -> None:
        """Under DDP every rank must take the same number of steps, or the all-reduce hangs."""
        if not self.world.distributed or _length(train) is None:
            return
        counts = distributed.all_gather_int(len(train), self.device)
        if len(set(counts)) > 1:
            raise TrainingError(
                f"the ranks would take different numbers of training steps per epoch ({counts}); "
                "shuffle the training TensorBatcher or use torchlab.data.batcher.make_loader, which pad the shards"
            )

    def _resume(self, resume: bool | str | os.PathLike, train: Batches) -> None:
        resumed = restore(
            resume_path(resume, self.checkpoint_dir), model=self.model, optimizer=self.optimizer,
            scheduler=self.scheduler, early_stopping=self.early_stopping, per_batch=self.scheduler_interval == "batch",
            steps_per_epoch=_length(train), epochs=self.epochs, device=self.device, clean_up=self.world.is_main,
        )
        self.start_epoch, self.history, self._best_state = resumed.epoch, resumed.history, resumed.best_state

    def _step_epoch_scheduler(self, row: dict[str, float]) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(row.get(self.early_stopping.monitor, row["train_loss"]))
        else:
            self.scheduler.step()

    def _check_finite(self, row: dict[str, float], epoch: int) -> None:
        """A NonFiniteLoss when a loss of the row is NaN or infinite, with advice and the last good checkpoint."""
        bad = [k for k, v in row.items() if k.endswith("loss") and not math.isfinite(v)]
        if not bad:
            return
        last = self.checkpoint_dir / "last.pt" if self.checkpoint_dir else None
        only_validation = bad[0].startswith("val_") and math.isfinite(row.get("train_loss", math.nan))
        raise NonFiniteLoss(bad[0], row[bad[0]], epoch + 1, row["lr"],
                            BAD_VALIDATION_DATA if only_validation else SMALLER_STEPS,
                            last if last is not None and last.exists() else None)

    def _track_best(self, row: dict[str, float], epoch: int) -> bool:
        es = self.early_stopping
        if es.monitor not in row:
            raise ValueError(f"early stopping monitors {es.monitor!r}, which is not among {sorted(row)}")
        improved = es.update(row[es.monitor], epoch)
        if improved and es.restore_best_weights:
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return improved

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """The full checkpoint dict for the state after `epoch` (0-based) finished."""
        es = self.early_stopping
        return self.checkpoint_meta.checkpoint(
            self.model,
            epoch=epoch + 1,
            epochs=self.epochs,
            history=list(self.history),
            metrics=dict(self.history[-1]) if self.history else {},
            best={"monitor": es.monitor, "mode": es.mode, "value": es.best, "epoch": es.best_epoch + 1},
            early_stopping=es.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            rng=rng_state(),
            world_size=self.world.world_size,
        )


def _length(batches: Batches) -> int | None:
    """The number of batches, or None for an iterable without a length."""
    return len(batches) if hasattr(batches, "__len__") else None


def _set_epoch(batches: Batches, epoch: int) -> None:
    for obj in (batches, getattr(batches, "sampler", None), getattr(batches, "batch_sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
