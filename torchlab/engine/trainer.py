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

Options Keras and Lightning users reach for, on the same loop: the early-stopping rules of
early_stopping.py (baseline, start_from_epoch, stopping and divergence thresholds, check_finite);
`accumulate` (one optimizer step per N batches); `max_time` (a time budget: the run stops at the
first optimizer step past it, validates and checkpoints, and `fit(resume=True)` goes on from that
very batch); `dry_run` (one training step and one validation batch, nothing written: dry_run.py).

The loop is all here; its helpers have a module each: totals.py (an epoch's loss and metric
sums), resume.py (a run brought back from last.pt), checkpoint_writer.py (the files) and
dry_run.py (the dry run's report).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.config import duration_seconds
from torchlab.engine import dry_run as dry
from torchlab.engine.callbacks import Callback, as_callbacks
from torchlab.engine.checkpoint import CheckpointMeta, read_checkpoint
from torchlab.engine.checkpoint_writer import CheckpointWriter
from torchlab.engine.early_stopping import EarlyStopping
from torchlab.engine.ema import WeightAverage
from torchlab.engine.metrics import Metric
from torchlab.engine.resume import Interruption, restore, resume_path
from torchlab.engine.totals import Totals
from torchlab.errors import FieldName, NonFiniteLoss, TrainingError
from torchlab.reporting.progress import EpochProgress
from torchlab.reporting.tensorboard import TensorBoardLogger, require_tensorboard
from torchlab.runtime import distributed
from torchlab.runtime.device import rng_state, set_rng_state

_NULL = contextlib.nullcontext()  # reusable, one object for every step: no autocast, no DDP no_sync
LossFn = Callable[..., torch.Tensor]
Batches = Iterable[tuple[torch.Tensor, ...]]
EpochCallback = Callable[["Trainer", dict[str, float]], None]  # or a Callback (callbacks.py)
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
    # Why the run ended before its last epoch: an early-stopping rule ("patience", "stopping_threshold",
    # "divergence_threshold", "not_finite") or the time budget ("max_time"); None: it ran every epoch.
    stop_reason: str | None = None
    stop_message: str = ""  # the same in words, one line for the run's summary
    # A time budget that ran out inside an epoch: that epoch's row so far (the training means over its
    # first `batches` batches, then the validation); last.pt holds that state, and resume goes on from it.
    partial: dict[str, float] | None = None

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

    accumulate: one optimizer step per N batches (and after the epoch's last one), on the mean
    gradient over the window's samples, so batch 16 x accumulate 4 trains like batch 64 (the loss
    must be a mean over the batch, as for the epoch's means). Clipping, a per-batch schedule and
    TensorBoard's step go per optimizer step; under DDP only the window's last batch all-reduces.

    max_time: a time budget for each `fit`, measured with `clock`: the run stops at the first
    optimizer step past it, validates, and writes last.pt (and best.pt when better); the
    FitResult's stop_reason is "max_time". Part-way through an epoch, last.pt holds the position
    and `fit(resume=True)` goes on from the next batch, exactly as if never stopped (resume.py).
    Under torchrun rank 0's clock decides for every rank (one broadcast per optimizer step).

    dry_run: `fit` runs one training step and one validation batch, writes nothing, and raises
    `DryRunComplete` with their `DryRunReport` (see `try_batches` and dry_run.py).

    ema: the decay of an exponential moving average of the weights, updated after every optimizer
    step (ema.py). Validation, early stopping and the checkpoints' state_dict then use the averaged
    weights, and `fit` leaves them in the model; each checkpoint also keeps the training weights
    (its "ema" entry), so `fit(resume=True)` goes on exactly. None: no average.
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
    callbacks: list[Callback | EpochCallback] = field(default_factory=list)
    tensorboard_dir: str | os.PathLike | None = None
    accumulate: int = 1  # batches per optimizer step: an effective batch of accumulate x the batch size
    max_time: float | str | None = None  # time budget of each fit: seconds, or "90s", "15m", "2h"; None: none
    clock: Callable[[], float] = time.monotonic  # what max_time is measured with (a test passes its own)
    dry_run: bool = False  # fit runs one training step and one validation batch, then raises DryRunComplete
    ema: float | None = None  # decay of a moving average of the weights (e.g. 0.999); None: none

    def __post_init__(self) -> None:
        if self.scheduler_interval not in ("epoch", "batch"):
            raise ValueError("scheduler_interval must be 'epoch' or 'batch'")
        if not isinstance(self.accumulate, int) or isinstance(self.accumulate, bool) or self.accumulate < 1:
            raise ValueError(f"accumulate must be a whole number >= 1, got {self.accumulate!r}")
        try:
            self._max_seconds = duration_seconds(self.max_time)
        except ValueError:
            raise ValueError(f"max_time must be a number of seconds > 0 or a duration such as 90s, 15m or 2h, "
                             f"got {self.max_time!r}") from None
        self.device = torch.device(self.device)
        self.world = distributed.current()
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        # Two names for the model: `model` is the plain nn.Module (what is saved and returned);
        # `wrapped_model` is what the training loop calls (maybe compiled, maybe DDP-wrapped).
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.average = WeightAverage(self.model, self.ema) if self.ema is not None else None
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
        self._started = 0.0  # the clock when fit began (max_time)
        self._resume_point: Interruption | None = None  # a resumed run goes on inside this epoch
        self.interruption: Interruption | None = None  # where the time budget stopped the last train_epoch
        self.stop_checkpoint: dict[str, Any] | None = None  # the checkpoint of that stop (rank 0)
        if self.tensorboard_dir is not None:
            require_tensorboard()  # before any training: a missing package is a one-line error

    # ----------------------------------------------------------------- batches
    def _autocast(self):
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return _NULL

    def _to_device(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        device = self.device
        if any(t.device != device for t in batch):  # a DataLoader's CPU batch; TensorBatcher's are there already
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
        if self.channels_last and batch[0].dim() == 4:
            batch = (batch[0].contiguous(memory_format=torch.channels_last),) + batch[1:]
        return batch

    # ------------------------------------------------------------------- epochs
    def train_epoch(self, batches: Batches, epoch: int, progress: EpochProgress | None = None) -> dict[str, float]:
        """One pass over the training batches; returns mean loss (and metrics) over the samples trained.

        The optimizer steps once every `accumulate` batches and after the epoch's last one. When the
        time budget runs out at a step that is not the epoch's last, the pass ends there and
        `self.interruption` says where (fit then validates and checkpoints that state).
        """
        self.wrapped_model.train()
        _set_epoch(batches, epoch)
        totals = Totals(self.metrics if self.train_metrics else {}, self.device)
        count = _length(batches)
        point, self._resume_point = self._resume_point, None
        if point is not None and point.epoch != epoch:
            point = None
        if point is not None:
            set_rng_state(point.epoch_rng)
        epoch_rng = rng_state() if self._max_seconds is not None else None  # before the iterator draws from it
        iterator = iter(batches)
        done = 0
        if point is not None:  # a resumed interruption: skip the batches trained before it
            for _ in range(point.batches):
                next(iterator)
            if self.world.is_main:  # the sums of all ranks, counted once
                totals.load(point.totals)
            set_rng_state(point.rng)
            done = point.batches
        if progress is not None:
            progress.start_epoch(epoch, count, done=done)
        self.interruption = None
        pending = 0  # samples whose gradients wait for the optimizer step (accumulate > 1)
        for index, batch in enumerate(iterator, done):
            inputs, *targets = self._to_device(batch)
            stepping = self.accumulate == 1 or (index + 1) % self.accumulate == 0 or index + 1 == count
            loss, output = self._forward_backward(inputs, targets, first=pending == 0, sync=stepping)
            pending += output.shape[0]
            if stepping:
                self._optimizer_step(pending)
                pending = 0
            totals.add(loss, output, targets)
            if progress is not None:
                progress.step(loss)  # reads the loss off the device at most twice a second
            if stepping and index + 1 != count and self._out_of_time():
                self.interruption = Interruption(epoch, index + 1, count, self.accumulate, [], epoch_rng, rng_state())
                break
        if pending:  # batches without a length: the last, short window
            self._optimizer_step(pending)
        if self.interruption is not None:
            self.interruption.totals = totals.state()
        return totals.summarize("train_")

    def _forward_backward(self, inputs: torch.Tensor, targets: list[torch.Tensor], first: bool, sync: bool
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's loss and its gradients; `first`: it opens a window (zero the gradients), `sync`: it
        closes one (under DDP the gradients are all-reduced in this backward pass only)."""
        if first:
            self.optimizer.zero_grad(set_to_none=True)
        ddp = isinstance(self.wrapped_model, nn.parallel.DistributedDataParallel)
        with self.wrapped_model.no_sync() if ddp and not sync else _NULL:
            with self._autocast():
                output = self.wrapped_model(inputs)
                loss = self.loss_fn(output, *targets)
            if self.accumulate == 1:
                loss.backward()
            else:  # the sum over the samples: the step divides by the window's samples (a mean over all of them)
                (loss * output.shape[0]).backward()
        return loss, output

    def _optimizer_step(self, samples: int) -> None:
        """Step the optimizer (and a per-batch scheduler) on the gradients of the last `samples` samples."""
        if self.accumulate > 1:
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.div_(samples)
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self._tensorboard is not None:
            self._step += 1
            self._tensorboard.log_step(self._step, self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "batch":
            self.scheduler.step()
        if self.average is not None:
            self.average.update(self.model)

    def _averaged_weights(self):
        """Inside: the model holds the moving average of its weights (no average: its own weights)."""
        return self.average.swapped_into(self.model) if self.average is not None else _NULL

    def _out_of_time(self) -> bool:
        """Whether the time budget is spent; rank 0's clock decides for every rank."""
        if self._max_seconds is None:
            return False
        return distributed.broadcast_flag(self.clock() - self._started >= self._max_seconds, self.device)

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
        """Train for `self.epochs` epochs (or until early stopping or the time budget); see the module docstring.

        resume: True continues from `<checkpoint_dir>/last.pt`; a path continues from that file.
        With `dry_run`, raises DryRunComplete after one training step and one validation batch.
        """
        es = self.early_stopping
        if val is None and self._default_monitor:
            es.monitor = "train_loss"
        if val is None and es.monitor.startswith("val_"):
            raise ValueError(f"early stopping monitors {es.monitor!r} but no validation data was given")
        self._check_equal_steps(train)
        self.stop_checkpoint = None
        if resume:
            self._resume(resume, train)
        if self.dry_run:
            raise dry.DryRunComplete(self.try_batches(train, val))
        writer = None
        if self.checkpoint_dir is not None and self.world.is_main:  # rank 0 writes the files
            writer = CheckpointWriter(self.checkpoint_dir, self.checkpoint_every, self.epochs)
        progress = EpochProgress.create(self.progress, self.epochs) if self.world.is_main else None
        if self.tensorboard_dir is not None and self.world.is_main:
            self._tensorboard = TensorBoardLogger(self.tensorboard_dir)
            point = self._resume_point
            self._step = self.start_epoch * _steps(train, self.accumulate) + (
                point.batches // self.accumulate if point is not None else 0)
        self._started = self.clock()
        started = time.perf_counter()
        stop_reason, stop_message, partial = None, "", None
        try:
            for epoch in range(self.start_epoch, self.epochs):
                if es.should_stop:
                    break
                t0 = time.perf_counter()
                row: dict[str, float] = {"epoch": epoch + 1}
                row.update(self.train_epoch(train, epoch, progress))
                with self._averaged_weights():  # validated and saved: the averaged weights (ema)
                    if val is not None:
                        if progress is not None:
                            progress.validating()
                        row.update(self.evaluate(val))
                    if self.interruption is not None:  # the time budget ran out inside the epoch
                        partial, stop_reason = self._stop_inside_epoch(row, epoch, t0, writer), "max_time"
                        stop_message = self._budget_message(epoch, self.interruption.batches, _length(train))
                        if progress is not None:
                            progress.end_epoch(row)
                            progress.write(stop_message)
                        break
                    if self.scheduler is not None and self.scheduler_interval == "epoch":
                        self._step_epoch_scheduler(row)
                    row["lr"] = self.optimizer.param_groups[0]["lr"]
                    row["seconds"] = time.perf_counter() - t0
                    self._check_finite(row, epoch)
                    self.history.append(row)
                    if self._tensorboard is not None:
                        self._tensorboard.log_epoch(row)
                    improved = self._track_best(row, epoch)
                    out_of_time = self._out_of_time() and epoch + 1 < self.epochs  # every rank asks: a collective
                    if writer is not None and writer.due(epoch, es.should_stop or out_of_time):
                        # best.pt also while no epoch has counted (start_from_epoch): a run always leaves one
                        writer.write(self.checkpoint(epoch), self.history, improved or es.best_epoch < 0)
                stop = distributed.broadcast_flag(es.should_stop, self.device)
                if stop != es.should_stop:  # every rank adopts rank 0's decision
                    es.stopped_epoch = epoch if stop else None
                    es.stop_reason = None
                for callback in as_callbacks(self.callbacks):
                    callback.on_epoch_end(self, row)
                if es.should_stop:
                    stop_reason, stop_message = es.stop_reason, es.stop_message(row[es.monitor])
                elif out_of_time:
                    stop_reason, stop_message = "max_time", self._budget_message(epoch, None, _length(train))
                if progress is not None:
                    progress.end_epoch(row)
                    if stop_message:
                        progress.write(stop_message)
                if stop_reason is not None:
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
        elif self.average is not None:
            self.model.load_state_dict(self.average.shadow)
        return FitResult(
            history=list(self.history),
            best_value=es.best,
            best_epoch=es.best_epoch + 1,
            epochs_run=len(self.history),
            stopped_early=es.should_stop,
            fit_seconds=fit_seconds,
            checkpoint_dir=self.checkpoint_dir,
            stop_reason=stop_reason,
            stop_message=stop_message,
            partial=partial,
        )

    def _stop_inside_epoch(self, row: dict[str, float], epoch: int, t0: float, writer: CheckpointWriter | None
                           ) -> dict[str, float]:
        """The time budget stopped epoch `epoch` part-way and `row` holds its validation: checkpoint that state.

        last.pt gets the weights, the position in the epoch and early stopping as it was before this
        validation (a resumed run then counts the epoch once, when it ends); best.pt gets the weights
        too when they are better than the best, and last.pt keeps the best.pt they replaced, which a
        resume puts back. Returns the row (with the batches trained), which the history leaves out.
        """
        point, es = self.interruption, self.early_stopping
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["seconds"] = time.perf_counter() - t0
        row["batches"] = point.batches
        self._check_finite(row, epoch)
        if es.monitor not in row:
            raise ValueError(f"early stopping monitors {es.monitor!r}, which is not among {sorted(row)}")
        saved = es.state_dict()  # what a resumed run starts from
        had_best = es.best_epoch >= 0
        probe = copy.copy(es)
        better = probe.update(row[es.monitor], epoch)
        if better:  # this run's result: these weights are its best
            es.best, es.best_epoch = probe.best, probe.best_epoch
            if es.restore_best_weights:
                self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.world.is_main:
            write_best = better or not had_best
            stopped = {**point.as_dict(), "best_written": write_best}
            best_path = self.checkpoint_dir / "best.pt" if self.checkpoint_dir is not None else None
            if write_best and had_best and best_path is not None and best_path.exists():
                replaced = read_checkpoint(best_path)
                stopped["replaced_best"] = {k: v for k, v in replaced.items() if k != "interrupted"}
            checkpoint = self.checkpoint(epoch - 1)  # `epoch` epochs done
            checkpoint.update(metrics=dict(row), early_stopping=saved, rng=point.rng, interrupted=stopped)
            self.stop_checkpoint = checkpoint
            if writer is not None and writer.every:
                writer.write(checkpoint, self.history, write_best)
        return row

    def _budget_message(self, epoch: int, batches: int | None, count: int | None) -> str:
        """What the summary says when the time budget ended the run after `batches` of epoch `epoch` (None: all)."""
        budget = _duration_text(self._max_seconds or 0.0)
        where = f"epoch {epoch + 1} of {self.epochs}"
        if batches is None:
            text = f"time budget of {budget} used up after {where}"
        else:
            text = (f"time budget of {budget} used up in {where}, after {batches} of {count or '?'} batches; "
                    "validated there")
        if self.checkpoint_dir is not None:
            text += f"; {self.checkpoint_dir / 'last.pt'} holds this state: resume to go on"
        return text

    # -------------------------------------------------------------------- dry run
    def try_batches(self, train: Batches, val: Batches | None = None) -> dry.DryRunReport:
        """One training step (forward, backward, optimizer step) and one validation batch: what they show.

        Nothing is written; the model's weights take that one step.
        """
        device, es = self.device, self.early_stopping
        dry.reset_peak_memory(device)
        self.wrapped_model.train()
        _set_epoch(train, self.start_epoch)
        batch = next(iter(train), None)
        if batch is None:
            raise TrainingError("the training data hold no batch: nothing to train on; check the data and its size")
        inputs, *targets = batch = self._to_device(batch)
        t0 = time.perf_counter()
        loss, output = self._forward_backward(inputs, targets, first=True, sync=True)
        self._optimizer_step(output.shape[0])
        totals = Totals(self.metrics if self.train_metrics else {}, device)
        totals.add(loss, output, targets)
        row = totals.summarize("train_")  # reads the loss back: the step is done
        seconds = time.perf_counter() - t0
        val_shapes = None
        if val is not None:
            val_batch = next(iter(val), None)
            if val_batch is not None:
                val_batch = self._to_device(val_batch)
                row.update(self.evaluate([val_batch]))
                val_shapes = dry.shapes(val_batch)
        notes = [f"{k} is not finite: the run would stop there with an error" for k, v in row.items()
                 if k.endswith("loss") and not math.isfinite(v)]
        if es.monitor not in row:
            notes.append(f"early stopping monitors {es.monitor!r}, which is not among {sorted(row)}")
        memory, memory_kind = dry.peak_memory(device)
        parameters, trainable = dry.count_parameters(self.model)
        return dry.DryRunReport(
            device=str(device), parameters=parameters, trainable=trainable, train_batches=_length(train),
            val_batches=_length(val) if val is not None else None, accumulate=self.accumulate,
            inputs=dry.shapes(batch), output=list(output.shape), train={k: v for k, v in row.items()
                                                                        if k.startswith("train_")},
            val={k: v for k, v in row.items() if k.startswith("val_")} if val_shapes is not None else None,
            val_inputs=val_shapes, memory_bytes=memory, memory_kind=memory_kind, step_seconds=seconds, notes=notes)

    # ------------------------------------------------------------------ helpers
    def _check_equal_steps(self, train: Batches) -> None:
        """Under DDP every rank must take the same number of steps, or the all-reduce hangs."""
        if not self.world.distributed:
            return
        if _length(train) is None:
            if self.accumulate > 1:  # the last window's gradients would never be all-reduced
                raise TrainingError("gradient accumulation under torchrun needs training batches with a length "
                                    "(a TensorBatcher or a DataLoader), so that every rank knows the epoch's last step")
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
            batches_per_epoch=_length(train), accumulate=self.accumulate, epochs=self.epochs, device=self.device,
            clean_up=self.world.is_main and not self.dry_run,
        )
        self.start_epoch, self.history, self._best_state = resumed.epoch, resumed.history, resumed.best_state
        if resumed.ema is not None and self.average is not None:  # the file's weights are the average
            self.average.load(self.model, resumed.ema)
        elif resumed.ema is not None:  # a run that averaged goes on without: from its training weights
            self.model.load_state_dict(resumed.ema["training_weights"])
        self._resume_point = resumed.interruption

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
        """The full checkpoint dict for the state after `epoch` (0-based) finished (ema: the averaged weights)."""
        with self._averaged_weights():
            return self._checkpoint(epoch)

    def _checkpoint(self, epoch: int) -> dict[str, Any]:
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
            **({"ema": self.average.state_dict(self.model)} if self.average is not None else {}),
        )


def _length(batches: Batches) -> int | None:
    """The number of batches, or None for an iterable without a length."""
    return len(batches) if hasattr(batches, "__len__") else None


def _steps(batches: Batches, accumulate: int) -> int:
    """Optimizer steps per epoch: one per `accumulate` batches and one after the last (0 without a length)."""
    return -(-(_length(batches) or 0) // accumulate)


def _duration_text(seconds: float) -> str:
    """90.0 -> '1m30s', 7200.0 -> '2h', 2.5 -> '2.5s'."""
    whole, fraction = divmod(seconds, 1)
    if fraction or seconds < 60:
        return f"{seconds:g}s"
    hours, rest = divmod(int(whole), 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def _set_epoch(batches: Batches, epoch: int) -> None:
    for obj in (batches, getattr(batches, "sampler", None), getattr(batches, "batch_sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
