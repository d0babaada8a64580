"""torchlab's Python API: train a task's recipe, evaluate or predict with a checkpoint.

    import torchlab
    result = torchlab.train("mnist", data_dir="data/mnist", epochs=1)
    print(result.metrics["test_accuracy"], result.best_checkpoint)
    torchlab.evaluate(result.best_checkpoint, data_dir="data/mnist")
    torchlab.predict(result.best_checkpoint, ["digit.png"])

The CLI (`torchlab train/evaluate/predict`) is a thin layer over these functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from torchlab.config import TrainConfig, flag_name, resume_conflicts, with_overrides
from torchlab.errors import CheckpointError, UsageError
from torchlab.outdir import clear_run, locked_output
from torchlab.tasks import TaskSpec, get_task
from torchlab.tasks import task_names as _task_names
from torchlab.tasks.base import InferenceOptions, RunOptions, RunResult, start_run


def task_names() -> list[str]:
    """Every registered task, sorted."""
    return _task_names()


def task_spec(task: str) -> TaskSpec:
    """The registered task; an unknown name is a UsageError listing the known ones."""
    try:
        return get_task(task)
    except KeyError:
        raise UsageError(f"unknown task {task!r}; choose one of: {', '.join(_task_names())}") from None


def recipe_names(task: str) -> list[str]:
    """The named recipes of `task` ("default" first)."""
    return list(task_spec(task).recipes)


def get_recipe(task: str, name: str = "default", **overrides: Any) -> TrainConfig:
    """The config of recipe `name` of `task`, with `overrides` (config field names) applied."""
    spec = task_spec(task)
    if name not in spec.recipes:
        raise UsageError(f"unknown recipe {name!r} for {task}; choose one of: {', '.join(spec.recipes)}")
    return with_overrides(spec.recipes[name], **overrides)


def train(task: str, recipe: str = "default", *, out: str | os.PathLike | None = None, device: str = "auto",
          seed: int = 0, resume: bool = False, progress: bool | None = None, figures: bool = True,
          tensorboard: bool = False, overwrite: bool = False, config: TrainConfig | None = None,
          **overrides: Any) -> RunResult:
    """Train `task` with recipe `recipe` (or a ready `config`), fields overridden by `overrides`.

    Writes best.pt, last.pt, history.csv and figures under `out` (default checkpoints/<task>)
    and returns a RunResult: metrics, checkpoint and figure paths, history, fit seconds.
    tensorboard=True also logs scalars and figures to <out>/tensorboard (torchlab[tensorboard]).
    A folder that already holds a run is refused unless `resume` or `overwrite` (see torchlab.outdir).
    """
    spec = task_spec(task)
    if config is not None and not isinstance(config, spec.config_class):
        raise UsageError(f"config for {task} must be a {spec.config_class.__name__}, got {type(config).__name__}")
    cfg = with_overrides(config if config is not None else get_recipe(task, recipe), **overrides)
    options = RunOptions(out=out, device=device, seed=seed, resume=resume, progress=progress, figures=figures,
                         tensorboard=tensorboard, overwrite=overwrite)
    run = start_run(spec.name, recipe, cfg, options)
    if resume:
        check_resume(run.out / "last.pt", cfg)
    with locked_output(run.out, enabled=run.is_main):
        if overwrite:
            clear_run(run.out)
        return spec.train(cfg, run)


def check_resume(path: Path, cfg: TrainConfig) -> None:
    """Refuse to resume with settings that change the data split, the model or the schedule."""
    from torchlab.checkpoint import read_checkpoint

    saved = read_checkpoint(path).get("config")
    if not saved:
        return  # written before configs were recorded: nothing to compare
    conflicts = resume_conflicts(saved, cfg)
    if conflicts:
        name, old, new = conflicts[0]
        raise UsageError(f"--resume with {flag_name(name)} {new!r} but {path} was trained with {old!r}; "
                         f"resume with the same {flag_name(name)} (only epochs, patience and speed flags may change) "
                         "or start a new run with another --out")


@dataclass
class LoadedCheckpoint:
    """A checkpoint ready for inference: the model (eval mode), its metadata and its task."""

    path: Path
    model: nn.Module
    meta: dict[str, Any]
    task: TaskSpec


def open_checkpoint(checkpoint: str | os.PathLike | LoadedCheckpoint, device: str = "auto") -> LoadedCheckpoint:
    """Load a checkpoint written by torchlab.train and find its task."""
    if isinstance(checkpoint, LoadedCheckpoint):
        return checkpoint
    from torchlab.checkpoint import load

    model, meta = load(checkpoint, device=device)
    try:
        task = get_task(meta["task"])
    except KeyError:
        raise CheckpointError(f"{checkpoint} was written by task {meta.get('task')!r}, "
                              "which this torchlab does not know") from None
    return LoadedCheckpoint(Path(checkpoint), model, meta, task)


def _options(batch_size: int | None, **kwargs: Any) -> InferenceOptions:
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    return InferenceOptions(batch_size=batch_size or 1024, **kwargs)


def evaluate(checkpoint: str | os.PathLike | LoadedCheckpoint, *, device: str = "auto", batch_size: int | None = 1024,
             data_dir: str = "data", data: str | None = None) -> dict[str, Any]:
    """Metrics of a checkpoint on its task's test (or validation) split."""
    loaded = open_checkpoint(checkpoint, device)
    if loaded.task.evaluate is None:
        raise UsageError(f"task {loaded.task.name} has no evaluate command")
    options = _options(batch_size, data_dir=data_dir, data=data)
    return loaded.task.evaluate(loaded.model, loaded.meta, options)


def predict(checkpoint: str | os.PathLike | LoadedCheckpoint, inputs: list[str] | tuple[str, ...] = (), *,
            index: list[int] | tuple[int, ...] = (), device: str = "auto", batch_size: int | None = 1024,
            data_dir: str = "data", data: str | None = None, out: str | None = None, format: str = "json",
            submission: str | None = None) -> list[dict[str, Any]]:
    """Predictions of a checkpoint for `inputs` (files or values, as its task takes) and test `index`es."""
    loaded = open_checkpoint(checkpoint, device)
    if loaded.task.predict is None:
        raise UsageError(f"task {loaded.task.name} has no predict command")
    options = _options(batch_size, data_dir=data_dir, data=data, index=tuple(index), out=out, format=format,
                       submission=submission)
    return loaded.task.predict(loaded.model, loaded.meta, [str(i) for i in inputs], options)

