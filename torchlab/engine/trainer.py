"""The one training loop every torchlab model goes through.

    trainer = Trainer(model, loss_fn, optimizer, metrics={"accuracy": Accuracy()}, epochs=30,
                      early_stopping=EarlyStopping("val_accuracy", "max", patience=5), checkpoint_dir="runs/mine")
    result = trainer.fit(train_batches, val_batches)

Read `fit` (epochs: train, validate, record, checkpoint, stop), `train_epoch` (batches) and
`train_step` (one batch, up to `optimizer.step()`). Each option is a module beside this one, called
at a named point: batches.py, budget.py (max_time), resume.py, checkpoint_writer.py, dry_run.py,
ema.py, early_stopping.py; the progress bar, TensorBoard and your own code are callbacks
(callbacks.py). Under torchrun the model runs in DistributedDataParallel (runtime/distributed.py),
metrics are summed over ranks, rank 0 alone writes files and decides when to stop.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.engine.batches import Batches, autocast, length, set_epoch, steps_per_epoch, to_device, with_last
from torchlab.engine.budget import TimeBudget, checkpoint_the_stop
from torchlab.engine.callbacks import Callback, Events
from torchlab.engine.checkpoint import CheckpointMeta
from torchlab.engine.checkpoint_writer import CheckpointWriter, assemble
from torchlab.engine.dry_run import DryRunComplete, try_batches
from torchlab.engine.early_stopping import EarlyStopping
from torchlab.engine.ema import WeightAverage
from torchlab.engine.finite_loss import check_finite
from torchlab.engine.from_config import check_arguments, trainer_from_config
from torchlab.engine.metrics import Metric
from torchlab.engine.optim import step_epoch_scheduler
from torchlab.engine.result import FitResult
from torchlab.engine.resume import Interruption, enter_epoch, resume_trainer
from torchlab.engine.totals import Totals
from torchlab.reporting.observers import reporters
from torchlab.reporting.tensorboard import require_tensorboard
from torchlab.runtime import distributed
from torchlab.runtime.device import rng_state

LossFn = Callable[..., torch.Tensor]
EpochCallback = Callable[["Trainer", dict[str, float]], None]  # a function taken as Callback.on_epoch_end


@dataclass
class Trainer:
    """Train `model` with `loss_fn(output, *targets)` and `optimizer` on batches `(inputs, *targets)`.

    progress: None shows a bar on a terminal only, True also one line per epoch elsewhere, False
    nothing (reporting/progress.py). accumulate: one optimizer step per N batches on their mean
    gradient. max_time: stop at the first optimizer step past this budget ("90s", "15m", seconds),
    validate and checkpoint there (budget.py). dry_run: `fit` runs one step and one validation
    batch and raises DryRunComplete (dry_run.py). ema: decay of a moving average of the weights that
    validation, early stopping and the checkpoints use (ema.py).
    """

    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    epochs: int = 10
    scheduler: Any = None
    scheduler_interval: str = "epoch"  # "epoch" or "batch"
    # given as None, a str or a PathLike, these three hold what __post_init__ makes of them
    early_stopping: EarlyStopping = None  # type: ignore[assignment]  # None: no stopping, the best val_loss tracked
    checkpoint_dir: Path | None = None  # or a str
    checkpoint_meta: CheckpointMeta = field(default_factory=CheckpointMeta)  # or its dict
    checkpoint_every: int = 1  # write last.pt (and best.pt) every N epochs and after the last; 0: never during fit
    device: torch.device = "cpu"  # type: ignore[assignment]  # or "cuda", "mps", ...
    grad_clip: float | None = None
    amp: bool = False  # bf16 autocast, CUDA only
    channels_last: bool = False
    compile: bool = False
    progress: bool | None = None
    train_metrics: bool = True
    callbacks: list[Callback | EpochCallback] = field(default_factory=list)
    tensorboard_dir: str | os.PathLike | None = None  # scalars per epoch and the lr per step (rank 0)
    accumulate: int = 1  # batches per optimizer step: an effective batch of accumulate x the batch size
    max_time: float | str | None = None  # time budget of each fit
    clock: Callable[[], float] = time.monotonic  # what max_time is measured with (a test passes its own)
    dry_run: bool = False
    ema: float | None = None  # e.g. 0.999; None: no average

    def __post_init__(self) -> None:
        check_arguments(self.scheduler_interval, self.accumulate, self.checkpoint_every)
        self.device = torch.device(self.device)
        self.budget = TimeBudget(self.max_time, self.clock, self.device)
        self.world = distributed.current()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.average = WeightAverage(self.model, self.ema) if self.ema is not None else None
        # `model` is the plain module (saved, returned); `net` is what the loop calls: compiled, DDP-wrapped.
        self.net = distributed.wrap_model(self._compiled(), self.device)
        self._default_monitor = self.early_stopping is None
        if self.early_stopping is None:
            self.early_stopping = EarlyStopping("val_loss", "min", patience=None, restore_best_weights=False)
        self.checkpoint_dir = Path(self.checkpoint_dir) if self.checkpoint_dir is not None else None
        self.checkpoint_meta = CheckpointMeta.of(self.checkpoint_meta)
        self.history: list[dict[str, float]] = []
        self.start_epoch, self.step = 0, 0  # the first epoch of this fit; optimizer steps since the run began
        self._window_samples = 0  # samples in the accumulation window so far
        self.best_state: dict[str, torch.Tensor] | None = None  # the best epoch's weights (restore_best_weights)
        self.events = Events()  # this fit's callbacks
        self.resume_point: Interruption | None = None  # a resumed run goes on inside this epoch
        self.interruption: Interruption | None = None  # where the time budget stopped the last train_epoch
        self.stop_checkpoint: dict[str, Any] | None = None  # the checkpoint of that stop (rank 0)
        if self.tensorboard_dir is not None:
            require_tensorboard()  # before any training: a missing package is a one-line error

    from_config = classmethod(trainer_from_config)  # Trainer.from_config(cfg, model, loss_fn, optimizer, ...)

    # ---------------------------------------------------------------------- fit
    def fit(self, train: Batches, val: Batches | None = None, *, resume: bool | str | os.PathLike = False) -> FitResult:
        """Train for `self.epochs` epochs, or until early stopping or the time budget ends the run.

        resume: True goes on from `<checkpoint_dir>/last.pt`, a path from that file.
        """
        es = self.early_stopping
        if val is None and self._default_monitor:
            es.monitor = "train_loss"
        if val is None and es.monitor.startswith("val_"):
            raise ValueError(f"early stopping monitors {es.monitor!r} but no validation data was given")
        distributed.check_equal_steps(self.world, length(train), self.accumulate, self.device)
        self.stop_checkpoint = None
        if resume:
            resume_trainer(self, resume, train)
        if self.dry_run:
            raise DryRunComplete(try_batches(self, train, val))
        writer = None
        if self.checkpoint_dir is not None and self.world.is_main:  # rank 0 writes the files
            writer = CheckpointWriter(self.checkpoint_dir, self.checkpoint_every, self.epochs)
        self.events = Events(
            [*reporters(self.progress, self.epochs, self.tensorboard_dir, self.world.is_main), *self.callbacks]
        )
        point = self.resume_point
        self.step = self.start_epoch * steps_per_epoch(train, self.accumulate) + (
            point.batches // self.accumulate if point is not None else 0
        )
        self.budget.start()
        started, stop_reason, stop_message, partial, result = time.perf_counter(), None, "", None, None
        try:
            self.events.fit_start(self)
            for epoch in range(self.start_epoch, self.epochs):
                if es.should_stop:
                    break
                t0 = time.perf_counter()
                row: dict[str, float] = {"epoch": epoch + 1, **self.train_epoch(train, epoch)}
                with self.averaged_weights():  # validated and saved: the averaged weights (ema)
                    if val is not None:
                        self.events.validation_start(self)
                        row.update(self.evaluate(val))
                    if self.interruption is not None:  # the time budget ran out inside the epoch
                        partial = checkpoint_the_stop(self, row, epoch, t0, writer)
                        stop_reason = "max_time"
                        stop_message = self.budget.message(self, epoch, self.interruption.batches, length(train))
                        break
                    if self.scheduler is not None and self.scheduler_interval == "epoch":
                        step_epoch_scheduler(self.scheduler, row.get(es.monitor, row["train_loss"]))
                    row["lr"] = self.optimizer.param_groups[0]["lr"]
                    row["seconds"] = time.perf_counter() - t0
                    check_finite(row, epoch, self.checkpoint_dir)
                    self.history.append(row)
                    improved = es.update(es.value_in(row), epoch)
                    if improved:
                        self.keep_best()
                    out_of_time = self.budget.spent() and epoch + 1 < self.epochs  # every rank asks: a collective
                    if writer is not None and writer.due(epoch, es.should_stop or out_of_time):
                        # best.pt also while no epoch has counted (start_from_epoch): a run always leaves one
                        writer.write(self.checkpoint(epoch), self.history, improved or es.best_epoch < 0)
                es.follow(distributed.broadcast_flag(es.should_stop, self.device), epoch)  # rank 0 decides
                self.events.epoch_end(self, row)
                if es.should_stop:
                    stop_reason, stop_message = es.stop_reason, es.stop_message(row[es.monitor])
                elif out_of_time:
                    stop_reason, stop_message = "max_time", self.budget.message(self, epoch, None, length(train))
                if stop_reason is not None:
                    break
            if es.restore_best_weights and self.best_state is not None:
                self.model.load_state_dict(self.best_state)
            elif self.average is not None:
                self.model.load_state_dict(self.average.shadow)
            result = FitResult(
                list(self.history),
                es.best,
                es.best_epoch + 1,
                len(self.history),
                es.should_stop,
                time.perf_counter() - started,
                self.checkpoint_dir,
                stop_reason,
                stop_message,
                partial,
            )
        finally:
            self.events.fit_end(self, result)  # progress and TensorBoard close here, also after an exception
            self.events = Events()
        return result

    # -------------------------------------------------------------------- epoch
    def train_epoch(self, batches: Batches, epoch: int) -> dict[str, float]:
        """One pass over the training batches; their mean loss (and metrics) over the samples trained.

        When the time budget runs out at an optimizer step that is not the epoch's last, the pass ends
        there and `self.interruption` says where (fit then validates and checkpoints that state).
        """
        self.net.train()
        set_epoch(batches, epoch)
        totals = Totals(self.metrics if self.train_metrics else {}, self.device)
        count = length(batches)
        point, self.resume_point = self.resume_point, None
        iterator, done, epoch_rng = enter_epoch(point, epoch, batches, totals, self.world.is_main, self.budget.active)
        self.events.epoch_start(self, epoch, count, done)
        self.interruption = None
        for index, (batch, last) in enumerate(with_last(iterator, count, done), done):
            inputs, *targets = to_device(batch, self.device, self.channels_last)
            closes = last or (index + 1) % self.accumulate == 0  # the batch ends an accumulation window
            loss, output = self.train_step(inputs, targets, opens=index % self.accumulate == 0, closes=closes)
            totals.add(loss, output, targets)
            self.events.batch_end(self, loss)
            if closes and not last and self.budget.spent():
                self.interruption = Interruption(
                    epoch, index + 1, count, self.accumulate, [], epoch_rng or {}, rng_state()
                )
                self.interruption.totals = totals.state()
                break
        return totals.summarize("train_")

    # --------------------------------------------------------------------- step
    def train_step(
        self, inputs: torch.Tensor, targets: list[torch.Tensor], opens: bool = True, closes: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: forward under autocast, loss, backward; when the batch `closes` an accumulation
        window (every batch with accumulate=1), clip, `optimizer.step()`, schedule and average.
        Returns the batch's (loss, output)."""
        if opens:
            self.optimizer.zero_grad(set_to_none=True)
            self._window_samples = 0
        with distributed.no_sync(self.net, sync=closes):  # DDP all-reduces in a window's last backward only
            with autocast(self.device, self.amp):
                output = self.net(inputs)
                loss = self.loss_fn(output, *targets)
            # accumulating: the sum over the samples, divided by the window's samples before the step
            (loss if self.accumulate == 1 else loss * output.shape[0]).backward()
        self._window_samples += output.shape[0]
        if closes:
            if self.accumulate > 1:
                for p in self.model.parameters():
                    if p.grad is not None:
                        p.grad.div_(self._window_samples)
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            self.step += 1
            self.events.step_end(self, self.step)
            if self.scheduler is not None and self.scheduler_interval == "batch":
                self.scheduler.step()
            if self.average is not None:
                self.average.update(self.model)
        return loss, output

    # ------------------------------------------------------------------ helpers
    @torch.no_grad()
    def evaluate(self, batches: Batches, prefix: str = "val_") -> dict[str, float]:
        """Mean loss and metrics over `batches` in eval mode, on the unwrapped model (no gradient sync)."""
        model = distributed.unwrap(self.net)
        model.eval()
        totals = Totals(self.metrics, self.device)
        for batch in batches:
            inputs, *targets = to_device(batch, self.device, self.channels_last)
            with autocast(self.device, self.amp):
                output = model(inputs)
                loss = self.loss_fn(output, *targets)
            totals.add(loss, output.float(), targets)
        return totals.summarize(prefix)

    def averaged_weights(self) -> Any:
        """Inside: the model holds the moving average of its weights (no average: its own weights)."""
        return self.average.swapped_into(self.model) if self.average is not None else contextlib.nullcontext()

    def _compiled(self) -> nn.Module:
        return torch.compile(self.model) if self.compile else self.model  # type: ignore[return-value]

    def keep_best(self) -> None:
        """The model's weights are the run's best so far: keep a copy when early stopping restores the best."""
        if self.early_stopping.restore_best_weights:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """The full checkpoint dict for the state after `epoch` (0-based) finished (checkpoint_writer.py)."""
        return assemble(self, epoch)
