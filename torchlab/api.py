"""torchlab's Python API: train a task's recipe, evaluate or predict with a checkpoint.

    import torchlab
    result = torchlab.train("mnist", data_dir="data/mnist", epochs=1)
    print(result.metrics["test_accuracy"], result.best_checkpoint)
    torchlab.evaluate(result.best_checkpoint, data_dir="data/mnist")
    torchlab.predict(result.best_checkpoint, ["digit.png"])

The CLI (`torchlab train/evaluate/predict`) is a thin layer over these functions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from torchlab.config import (
    TrainConfig,
    as_dict,
    changed_fields,
    field_names,
    flag_name,
    resume_conflicts,
    with_overrides,
)
from torchlab.engine.dry_run import DryRunComplete, DryRunReport
from torchlab.errors import (
    CheckpointError,
    FieldName,
    LostPeer,
    NonFiniteLoss,
    UsageError,
)
from torchlab.reporting.records import FORMATS, write_records
from torchlab.runtime import distributed
from torchlab.runtime.guards import Note
from torchlab.runtime.output_folder import clear_run, locked_output, resolve_resume
from torchlab.tasks import Task, get_task
from torchlab.tasks import task_names as _task_names
from torchlab.tasks.run import InferenceOptions, RunOptions, RunResult, start_run


def task_names() -> list[str]:
    """Every registered task, sorted."""
    return _task_names()


def find_task(task: str) -> Task:
    """The registered task; an unknown name is a UsageError listing the known ones."""
    try:
        return get_task(task)
    except KeyError:
        raise UsageError(f"unknown task {task!r}; choose one of: {', '.join(_task_names())}") from None


def recipe_names(task: str) -> list[str]:
    """The named recipes of `task` ("default" first)."""
    return list(find_task(task).recipes)


def get_recipe(task: str, name: str = "default", **overrides: Any) -> TrainConfig:
    """The config of recipe `name` of `task`, with `overrides` (config field names) applied."""
    entry = find_task(task)
    if name not in entry.recipes:
        raise UsageError(f"unknown recipe {name!r} for {task}; choose one of: {', '.join(entry.recipes)}")
    return with_overrides(entry.recipes[name], **overrides)


def train(task: str, recipe: str | None = None, *, out: str | os.PathLike | None = None, device: str = "auto",
          seed: int = 0, resume: bool | str = False, progress: bool | None = None, figures: bool = True,
          tensorboard: bool = False, overwrite: bool = False, config: TrainConfig | None = None,
          dry_run: bool = False, callbacks: list[Any] | tuple[Any, ...] = (), checkpoint_every: int = 1,
          **overrides: Any) -> RunResult | DryRunReport:
    """Train `task` with recipe `recipe` (or a ready `config`), fields overridden by `overrides`.

    recipe=None: "default", or the task's CPU recipe when the run's device is the CPU (keypoint-net:
    "cpu": 18 instead of 100 epochs and no flips), with a Note saying so.

    Writes best.pt, last.pt, history.csv and figures under `out` (default checkpoints/<task>)
    and returns a RunResult: metrics, checkpoint and figure paths, history, fit seconds.
    tensorboard=True also logs scalars and figures to <out>/tensorboard (torchlab[tensorboard]).
    A folder that already holds a run is refused unless `resume` or `overwrite` (see torchlab.runtime.output_folder).
    resume=True continues from `out`/last.pt; resume="auto" does when last.pt exists and starts the run
    otherwise. Under torchrun, a worker its elastic agent restarted (--max-restarts) resumes from last.pt
    by itself. checkpoint_every=N writes last.pt after every N-th epoch (and the last): a crash loses at
    most N epochs.

    dry_run=True: one training step and one validation batch of the real data and model, then a
    DryRunReport (shapes, parameter count, losses, peak memory) instead of a RunResult; nothing is
    written (with `resume`, the step starts from `out`/last.pt, which is only read).

    callbacks: torchlab.Callback objects (or functions f(trainer, row)) the run's Trainer calls at its
    named points (see torchlab/engine/callbacks.py); an exception raised there ends the run.
    """
    entry = find_task(task)
    named = recipe is not None
    if recipe is None:
        recipe = "default" if config is not None else choose_recipe(entry, device)
    if config is not None and not isinstance(config, entry.config_class):
        raise UsageError(f"config for {task} must be a {entry.config_class.__name__}, got {type(config).__name__}")
    cfg = with_overrides(config if config is not None else get_recipe(task, recipe), **overrides)
    options = RunOptions(out=out, device=device, seed=seed, resume=resume, progress=progress, figures=figures,
                         tensorboard=tensorboard, overwrite=overwrite, callbacks=tuple(callbacks),
                         checkpoint_every=checkpoint_every)
    if dry_run:
        return _dry_run(entry, recipe, cfg, options)
    run = start_run(entry.name, recipe, cfg, options)
    if cfg.amp and run.device.type != "cuda" and run.is_main and (overrides.get("amp") or config is not None):
        where = "the CPU" if run.device.type == "cpu" else run.device.type.upper()
        warnings.warn(f"--amp does nothing on {where}: bf16 autocast runs on CUDA only, so this run trains in "
                      "float32", Note, stacklevel=2)
    if run.resume:
        check_resume(run.out / "last.pt", cfg)
    if run.restart and run.resume and run.is_main:
        warnings.warn(f"torchrun restarted this run's workers (restart {run.restart}): going on from "
                      f"{run.out / 'last.pt'}", Note, stacklevel=2)
    with locked_output(run.out, enabled=run.is_main):
        if run.overwrite:
            clear_run(run.out)
        try:
            result = entry.function("train")(cfg, run)
        except NonFiniteLoss as exc:
            odd = non_finite_field(cfg)
            if odd is None:
                raise
            # a NaN or infinite config value, not the step size, made the loss non-finite
            raise exc.with_advice(FieldName(odd), f" is {getattr(cfg, odd)}: give it a finite value") from None
        except RuntimeError as exc:
            if not distributed.lost_peer(exc):
                raise
            raise lost_peer_error(run.out, exc) from None
    if not named and recipe != "default" and run.is_main:  # after the run: a usage error stays the only line
        warnings.warn(f"{entry.name} on the CPU used its '{recipe}' recipe (the default one with "
                      f"{changed_fields(entry.recipes['default'], entry.recipes[recipe])}); "
                      "--recipe default (recipe='default') trains the full one", Note, stacklevel=2)
    return result


def _dry_run(entry: Task, recipe: str, cfg: TrainConfig, options: RunOptions) -> DryRunReport:
    """The task's train function up to its Trainer's first step and validation batch (see train's dry_run).

    Without resume the run's folder is a path that does not exist (in the temporary folder) and is
    removed afterwards, so nothing a task might write around its Trainer can reach `out`.
    """
    out = Path(options.out) if options.out else Path("checkpoints") / entry.name
    resume, _ = resolve_resume(out, options.resume, False)
    scratch = None if resume else Path(tempfile.gettempdir()) / f"torchlab-dry-run-{uuid.uuid4().hex}"
    options = dataclasses.replace(options, out=scratch or out, resume=resume, overwrite=False, dry_run=True)
    try:
        run = start_run(entry.name, recipe, cfg, options)
        if run.resume:
            check_resume(run.out / "last.pt", cfg)
        entry.function("train")(cfg, run)
    except DryRunComplete as done:
        return done.report
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    raise UsageError(f"{entry.name} with these settings trains without torchlab's Trainer, so a dry run cannot stop "
                     "after one batch (the run took place in a temporary folder, now removed); run it without "
                     "--dry-run")


def choose_recipe(entry: Task, device: str) -> str:
    """The recipe of a run that names none: "default", or the task's CPU recipe when `device` is the CPU."""
    if entry.cpu_recipe is None:
        return "default"
    from torchlab.runtime.device import pick_device

    return entry.cpu_recipe if pick_device(device).type == "cpu" else "default"


def lost_peer_error(out: Path, exc: BaseException) -> LostPeer:
    """What a rank says when another process of its torchrun run is gone: what failed, what is saved, what to do."""
    from torchlab.engine.checkpoint import read_checkpoint

    last = out / "last.pt"
    try:
        saved = f"{last} holds epoch {read_checkpoint(last)['epoch']}"
    except (CheckpointError, KeyError, OSError):
        saved = f"no {last} was written yet"
    return LostPeer(f"lost another process of this torchrun run ({distributed.lost_peer_reason(exc)}): a worker or "
                    f"node died or stopped answering; {saved}: run the same command again with --resume auto "
                    "(torchrun --max-restarts restarts lost workers by itself)")


def non_finite_field(cfg: TrainConfig) -> str | None:
    """The first config field whose value is a NaN or infinite float, or None."""
    odd = [name for name, value in as_dict(cfg).items() if isinstance(value, float) and not math.isfinite(value)]
    return odd[0] if odd else None


def check_resume(path: Path, cfg: TrainConfig) -> None:
    """Refuse to resume with config fields that change the data split, the model or the schedule."""
    from torchlab.engine.checkpoint import read_checkpoint

    saved = read_checkpoint(path).get("config")
    if not saved:
        return  # written before configs were recorded: nothing to compare
    conflicts = resume_conflicts(saved, cfg)
    if conflicts:
        name, old, new = conflicts[0]
        raise UsageError(f"--resume with {flag_name(name)} {new!r} but {path} was trained with {old!r}; "
                         f"resume with the same {flag_name(name)} (only epochs, batch size, accumulation, early stopping, "
                         "the time budget and speed settings may change) or start a new run with another --out")


@dataclass
class LoadedCheckpoint:
    """A checkpoint ready for inference: the model (eval mode), its metadata and its task."""

    path: Path
    model: nn.Module
    meta: dict[str, Any]
    task: Task


def open_checkpoint(checkpoint: str | os.PathLike | LoadedCheckpoint, device: str = "auto") -> LoadedCheckpoint:
    """Load a checkpoint written by torchlab.train and find its task."""
    if isinstance(checkpoint, LoadedCheckpoint):
        return checkpoint
    from torchlab.engine.checkpoint import load

    model, meta = load(checkpoint, device=device)
    try:
        task = get_task(meta["task"])
    except (KeyError, TypeError):
        raise CheckpointError(f"{checkpoint} was written by task {meta.get('task')!r}, "
                              "which this torchlab does not know") from None
    saved = meta.get("config")
    if saved is not None:
        known = set(field_names(task.config_class))
        foreign = [name for name in saved if name not in known] if isinstance(saved, dict) else ["config"]
        if foreign:
            raise CheckpointError(f"{checkpoint} says task {task.name} but its config field {foreign[0]!r} is not a "
                                  f"field of {task.name}'s config; its 'task' field does not fit its metadata: retrain")
    model_name = meta["model"].get("name")
    if model_name not in task.models:
        raise CheckpointError(f"{checkpoint} says task {task.name} but its model {model_name!r} does not take that "
                              f"task's inputs (a {task.name} checkpoint holds {' or '.join(task.models)}); "
                              "its 'task' field does not fit its model: retrain")
    return LoadedCheckpoint(Path(checkpoint), model, Metadata(meta), task)


class MissingField(KeyError):
    """A metadata field a task needs is not in the checkpoint (its dotted name is args[0])."""


class Metadata(dict):
    """Checkpoint metadata whose missing fields raise MissingField with their dotted name ('data.points')."""

    def __init__(self, items: dict[str, Any], prefix: str = "") -> None:
        super().__init__({k: Metadata(v, f"{prefix}{k}.") if type(v) is dict else v for k, v in items.items()})
        self.prefix = prefix

    def __missing__(self, key: Any) -> Any:
        raise MissingField(f"{self.prefix}{key}")


def _call_task(loaded: LoadedCheckpoint, fn: Any, *args: Any) -> Any:
    """fn(model, meta, *args), a missing metadata field turned into a CheckpointError that names it."""
    try:
        return fn(loaded.model, loaded.meta, *args)
    except MissingField as exc:
        raise CheckpointError(f"{loaded.path} has no metadata field {exc.args[0]!r}, which task {loaded.task.name} "
                              "needs; it was written by another task or an older torchlab: retrain") from None


def _options(batch_size: int | None, **kwargs: Any) -> InferenceOptions:
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    return InferenceOptions(batch_size=batch_size or 1024, **kwargs)


def evaluate(checkpoint: str | os.PathLike | LoadedCheckpoint, *, device: str = "auto", batch_size: int | None = 1024,
             data_dir: str = "data", data: str | None = None) -> dict[str, Any]:
    """Metrics of a checkpoint on its task's test (or validation) split."""
    loaded = open_checkpoint(checkpoint, device)
    evaluate_fn = loaded.task.function("evaluate")
    if evaluate_fn is None:
        raise UsageError(f"task {loaded.task.name} has no evaluate command")
    options = _options(batch_size, data_dir=data_dir, data=data)
    return _call_task(loaded, evaluate_fn, options)


def predict(checkpoint: str | os.PathLike | LoadedCheckpoint, inputs: list[str] | tuple[str, ...] = (), *,
            index: list[int] | tuple[int, ...] = (), device: str = "auto", batch_size: int | None = 1024,
            data_dir: str = "data", data: str | None = None, out: str | None = None, format: str = "json",
            submission: str | None = None, boxes: list[tuple[float, float, float, float]] | tuple = (),
            detect: bool | None = None) -> list[dict[str, Any]]:
    """Predictions of a checkpoint for `inputs` (files or values, as its task takes) and test `index`es.

    Keypoint photos: `boxes` gives faces by hand as (x, y, w, h) in photo pixels; `detect` finds
    them with OpenCV (None: when it is installed, True: must, False: center crop).

    `out` is a folder: the records go to <out>/predictions.<format> (json or csv) for every task;
    a task may write more files there (keypoint overlays).
    """
    if format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if out is None and format != "json":
        raise UsageError(f"--format {format} needs --out FOLDER (the predictions are written to FOLDER/predictions.{format})")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out} is a file; predict writes FOLDER/predictions.{format}: give a folder")
    loaded = open_checkpoint(checkpoint, device)
    predict_fn = loaded.task.function("predict")
    if predict_fn is None:
        raise UsageError(f"task {loaded.task.name} has no predict command")
    options = _options(batch_size, data_dir=data_dir, data=data, index=tuple(index), out=out, format=format,
                       submission=submission, boxes=tuple(tuple(b) for b in boxes), detect=detect)
    records = _call_task(loaded, predict_fn, [str(i) for i in inputs], options)
    if out is not None:
        write_records(records if format == "json" else [_flat(r) for r in records],
                      Path(out) / f"predictions.{format}", format)
    return records


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One CSV row: nested dicts become prefixed columns (probabilities_3), lists JSON text."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            row.update(_flat(value, f"{prefix}{key}_"))
        else:
            row[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return row

