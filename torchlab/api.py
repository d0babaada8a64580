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
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from torchlab.config import (
    TrainConfig,
    changed_fields,
    field_names,
    with_overrides,
)
from torchlab.engine.checkpoint import sound_checkpoint
from torchlab.engine.dry_run import DryRunComplete, DryRunReport
from torchlab.errors import (
    CheckpointError,
    FieldName,
    NonFiniteLoss,
    UsageError,
)
from torchlab.reporting.records import FORMATS, write_records
from torchlab.runtime import distributed
from torchlab.runtime.config_file import (
    CONFIG_FILE,
    read_config_file,
    typed_values,
    write_config_file,
)
from torchlab.runtime.guards import Note
from torchlab.runtime.output_folder import clear_run, locked_output, resolve_resume
from torchlab.tasks import ALIASES, Task, get_task, task_for
from torchlab.tasks import task_names as _task_names
from torchlab.tasks.guards import check_resume, file_state, lost_peer_error, non_finite_field, restore_file
from torchlab.tasks.run import InferenceOptions, RunOptions, RunResult, start_run


def task_names() -> list[str]:
    """Every registered task, sorted (the old names, such as digit-mlp, are aliases: torchlab.tasks.ALIASES)."""
    return _task_names()


def find_task(task: str, model: str | None = None) -> Task:
    """The task named `task` (or an old name, an alias) with the recipes of `model` (None: the alias's or the
    default model's); an unknown name is a UsageError listing the known ones."""
    return _find(task, model)[0]


def _find(task: str, model: str | None) -> tuple[Task, str | None]:
    """(the task with its model's recipes, the model the name or `model` fixes; None: the recipe's own)."""
    try:
        return task_for(task, model)
    except KeyError:
        raise UsageError(
            f"unknown task {task!r}; choose one of: {', '.join(_task_names())} (or an old name: {', '.join(ALIASES)})"
        ) from None


def recipe_names(task: str, model: str | None = None) -> list[str]:
    """The named recipes of `task` with `model` (default: the alias's or the task's default model), "default" first."""
    return list(find_task(task, model).recipes)


def get_recipe(task: str, name: str = "default", **overrides: Any) -> TrainConfig:
    """The config of recipe `name` of `task`, with `overrides` (config field names) applied.

    The recipes are those of the model `overrides` names (model=...), of the alias `task` (an old name such as
    keypoint-fcn), or of the task's default model.
    """
    entry, model = _find(task, overrides.get("model"))
    if model is not None:
        overrides = {**overrides, "model": model}
    if name not in entry.recipes:
        which = f"{task} --model {model}" if model is not None and task == entry.name else task
        raise UsageError(f"unknown recipe {name!r} for {which}; choose one of: {', '.join(entry.recipes)}")
    return with_overrides(entry.recipes[name], **overrides)


def train(
    task: str | None = None,
    recipe: str | None = None,
    *,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    seed: int | None = None,
    resume: bool | str = False,
    progress: bool | None = None,
    figures: bool = True,
    tensorboard: bool = False,
    overwrite: bool = False,
    config: TrainConfig | None = None,
    config_file: str | os.PathLike | None = None,
    dry_run: bool = False,
    callbacks: list[Any] | tuple[Any, ...] = (),
    checkpoint_every: int = 1,
    **overrides: Any,
) -> RunResult | DryRunReport:
    """Train `task` with recipe `recipe` (or a ready `config`), fields overridden by `overrides`.

    config_file: a TOML config file (a run folder's config.toml, or one written by hand): the recipe's
    values, then the file's, then `overrides`; the file's task, recipe and seed are used where the
    call gives none (`train(config_file="run/config.toml", out="new")` replays a run). seed: default 0.
    Every run folder gets `config.toml` (task, recipe, seed and every config field; see
    torchlab/runtime/config_file.py).

    recipe=None: "default", or the task's CPU recipe when the run's device is the CPU (keypoint-net:
    "cpu": 18 instead of 100 epochs and no flips), with a Note saying so.

    task: a task (digits, mnist, patch, ring, keypoints) or an old name (digit-mlp, keypoint-fcn, ...), which is
    its task with its model fixed; model=... (an override) picks another of the task's models, and its recipes.

    Writes best.pt, last.pt, history.csv and figures under `out` (default checkpoints/<task>, the name given)
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
    file_values: dict[str, Any] = {}
    if config_file is not None:
        if config is not None:
            raise UsageError("give a config or a config file, not both")
        task, recipe, seed, file_values = read_run_config(config_file, task, recipe, seed)
    if task is None:
        raise UsageError("name a task (or give a config file that names one)")
    seed = 0 if seed is None else seed
    entry, model = _find(task, overrides.get("model", file_values.get("model", getattr(config, "model", None))))
    if model is not None:
        overrides = {**overrides, "model": model}
    named = recipe is not None
    if recipe is None:
        recipe = "default" if config is not None else choose_recipe(entry, device)
    if config is not None and not isinstance(config, entry.config_class):
        raise UsageError(f"config for {task} must be a {entry.config_class.__name__}, got {type(config).__name__}")
    base = config if config is not None else get_recipe(task, recipe, **({"model": model} if model else {}))
    if file_values:
        try:
            base = with_overrides(base, **file_values)
        except UsageError as exc:  # a value out of range: say which file holds it
            raise UsageError(f"{config_file}: {exc}") from None
    cfg = with_overrides(base, **overrides)
    out = Path(out) if out is not None else Path("checkpoints") / task  # the name given: an alias keeps its folder
    options = RunOptions(
        out=out,
        device=device,
        seed=seed,
        resume=resume,
        progress=progress,
        figures=figures,
        tensorboard=tensorboard,
        overwrite=overwrite,
        callbacks=tuple(callbacks),
        checkpoint_every=checkpoint_every,
    )
    if dry_run:
        return _dry_run(entry, recipe, cfg, options)
    run = start_run(entry.name, recipe, cfg, options)
    if cfg.amp and run.device.type != "cuda" and run.is_main and (overrides.get("amp") or config is not None):
        where = "the CPU" if run.device.type == "cpu" else run.device.type.upper()
        warnings.warn(
            f"--amp does nothing on {where}: bf16 autocast runs on CUDA only, so this run trains in float32",
            Note,
            stacklevel=2,
        )
    if run.resume:
        check_resume(run.out / "last.pt", cfg, entry.name)
    if run.restart and run.resume and run.is_main:
        warnings.warn(
            f"torchrun restarted this run's workers (restart {run.restart}): going on from {run.out / 'last.pt'}",
            Note,
            stacklevel=2,
        )
    with locked_output(run.out, enabled=run.is_main):
        if run.overwrite:
            clear_run(run.out)
        config_path = run.out / CONFIG_FILE
        kept = (config_path.read_bytes() if config_path.exists() else None, file_state(run.out / "last.pt"))
        if run.is_main:
            write_config_file(config_path, entry.name, recipe, seed, cfg)
        trained = False
        try:
            result = train_function(entry)(cfg, run)
            trained = True
        except NonFiniteLoss as exc:
            if exc.checkpoint is not None and not exc.checked:  # name it as good only once it was checked
                exc = exc.with_checkpoint(sound_checkpoint(exc.checkpoint), checked=True)
            odd = non_finite_field(cfg)
            if odd is None:
                raise exc from None
            # a NaN or infinite config value, not the step size, made the loss non-finite
            raise exc.with_advice(FieldName(odd), f" is {getattr(cfg, odd)}: give it a finite value") from None
        except RuntimeError as exc:
            if not distributed.lost_peer(exc):
                raise
            raise lost_peer_error(run.out, exc) from None
        finally:
            if run.is_main and not trained and file_state(run.out / "last.pt") == kept[1]:
                restore_file(config_path, kept[0])  # nothing trained: the folder's config.toml as it was
    if not named and recipe != "default" and run.is_main:  # after the run: a usage error stays the only line
        model_name = getattr(cfg, "model", entry.name)  # the recipes are the model's: keypoint-net's cpu recipe
        warnings.warn(
            f"{model_name} on the CPU used its '{recipe}' recipe (the default one with "
            f"{changed_fields(entry.recipes['default'], entry.recipes[recipe])}); "
            "--recipe default (recipe='default') trains the full one",
            Note,
            stacklevel=2,
        )
    return result


def read_run_config(
    path: str | os.PathLike, task: str | None, recipe: str | None, seed: int | None
) -> tuple[str, str | None, int | None, dict[str, Any]]:
    """(task, recipe, seed, typed config fields) of a config file, the given task, recipe and seed first.

    A task that differs from the file's, or a recipe the task does not have, is a UsageError.
    """
    file = read_config_file(path)
    if task is not None and file.task is not None and find_task(task).name != find_task(file.task).name:
        raise UsageError(f"{path} is a config of task {file.task}, not {task}; drop the task or give its own file")
    task = task or file.task
    if task is None:
        raise UsageError(f"{path} names no task; give one: torchlab train TASK --config {path}")
    entry = find_task(task)
    recipe = recipe or file.recipe
    if recipe is not None and recipe not in entry.recipes:
        raise UsageError(
            f"{path}: unknown recipe {recipe!r} for {entry.name}; choose one of: {', '.join(entry.recipes)}"
        )
    return entry.name, recipe, seed if seed is not None else file.seed, typed_values(file, entry.config_class)


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
            check_resume(run.out / "last.pt", cfg, entry.name)
        train_function(entry)(cfg, run)
    except DryRunComplete as done:
        return done.report
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    raise UsageError(
        f"{entry.name} with these field values trains without torchlab's Trainer, so a dry run cannot "
        "stop after one batch (the run took place in a temporary folder, now removed); run it without "
        "--dry-run"
    )


def train_function(entry: Task) -> Callable[..., Any]:
    """The task's train(cfg, run), imported now."""
    function = entry.function("train")
    if function is None:
        raise UsageError(f"task {entry.name} has no train function")
    return function


def choose_recipe(entry: Task, device: str) -> str:
    """The recipe of a run that names none: "default", or the task's CPU recipe when `device` is the CPU."""
    if entry.cpu_recipe is None:
        return "default"
    from torchlab.runtime.device import pick_device

    return entry.cpu_recipe if pick_device(device).type == "cpu" else "default"


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
        task = get_task(meta["task"])  # an old task name (digit-mlp, keypoint-fcn, ...) is an alias of its task
    except (KeyError, TypeError):
        raise CheckpointError(
            f"{checkpoint} was written by task {meta.get('task')!r}, which this torchlab does not know"
        ) from None
    saved = meta.get("config")
    if saved is not None:
        known = set(field_names(task.config_class))
        foreign = [name for name in saved if name not in known] if isinstance(saved, dict) else ["config"]
        if foreign:
            raise CheckpointError(
                f"{checkpoint} says task {meta['task']} but its config field {foreign[0]!r} is "
                f"not a field of {meta['task']}'s config; its 'task' field does not fit its "
                "metadata: retrain"
            )
    model_name = meta["model"].get("name")
    models = (ALIASES[meta["task"]][1],) if meta["task"] in ALIASES else task.models  # an old name held its model
    if model_name not in models:
        raise CheckpointError(
            f"{checkpoint} says task {meta['task']} but its model {model_name!r} does not take that "
            f"task's inputs (a {meta['task']} checkpoint holds {' or '.join(models)}); "
            "its 'task' field does not fit its model: retrain"
        )
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
        raise CheckpointError(
            f"{loaded.path} has no metadata field {exc.args[0]!r}, which task {loaded.task.name} "
            "needs; it was written by another task or an older torchlab: retrain"
        ) from None


def _options(batch_size: int | None, **kwargs: Any) -> InferenceOptions:
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    return InferenceOptions(batch_size=batch_size or 1024, **kwargs)


def evaluate(
    checkpoint: str | os.PathLike | LoadedCheckpoint,
    *,
    device: str = "auto",
    batch_size: int | None = 1024,
    data_dir: str = "data",
    data: str | None = None,
) -> dict[str, Any]:
    """Metrics of a checkpoint on its task's test (or validation) split."""
    loaded = open_checkpoint(checkpoint, device)
    evaluate_fn = loaded.task.function("evaluate")
    if evaluate_fn is None:
        raise UsageError(f"task {loaded.task.name} has no evaluate command")
    options = _options(batch_size, data_dir=data_dir, data=data)
    return _call_task(loaded, evaluate_fn, options)


def predict(
    checkpoint: str | os.PathLike | LoadedCheckpoint,
    inputs: list[str] | tuple[str, ...] = (),
    *,
    index: list[int] | tuple[int, ...] = (),
    device: str = "auto",
    batch_size: int | None = 1024,
    data_dir: str = "data",
    data: str | None = None,
    out: str | None = None,
    format: str = "json",
    submission: str | None = None,
    boxes: list[tuple[float, float, float, float]] | tuple = (),
    detect: bool | None = None,
) -> list[dict[str, Any]]:
    """Predictions of a checkpoint for `inputs` (files or values, as its task takes) and test `index`es.

    Keypoint photos: `boxes` gives faces by hand as (x, y, w, h) in photo pixels; `detect` finds
    them with OpenCV (None: when it is installed, True: must, False: center crop).

    `out` is a folder: the records go to <out>/predictions.<format> (json or csv) for every task;
    a task may write more files there (keypoint overlays).
    """
    if format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if out is None and format != "json":
        raise UsageError(
            f"--format {format} needs --out FOLDER (the predictions are written to FOLDER/predictions.{format})"
        )
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out} is a file; predict writes FOLDER/predictions.{format}: give a folder")
    loaded = open_checkpoint(checkpoint, device)
    predict_fn = loaded.task.function("predict")
    if predict_fn is None:
        raise UsageError(f"task {loaded.task.name} has no predict command")
    options = _options(
        batch_size,
        data_dir=data_dir,
        data=data,
        index=tuple(index),
        out=out,
        format=format,
        submission=submission,
        boxes=tuple(tuple(b) for b in boxes),
        detect=detect,
    )
    records = _call_task(loaded, predict_fn, [str(i) for i in inputs], options)
    if out is not None:
        write_records(
            records if format == "json" else [_flat(r) for r in records], Path(out) / f"predictions.{format}", format
        )
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
