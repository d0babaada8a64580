"""Every task by name: what `torchlab train TASK` and `torchlab.train(TASK)` look up.

A task is one folder here. Its `config.py` defines the config class (a frozen TrainConfig),
the named recipes, and registers a `Task` whose functions are written "module:function" and
imported only when called, so this registry, the configs and the CLI's flags need no torch:

    tasks/mnist/config.py   MnistConfig, RECIPES, register_task(Task("mnist", ...))
    tasks/mnist/train.py    train(cfg, run) -> RunResult                        ("train:train")
    tasks/mnist/infer.py    evaluate(model, meta, options), predict(...), ...   ("infer:evaluate", ...)
    tasks/mnist/plots.py    the figures of a finished run

A reference without a dot before the colon names a module of the task's own folder.

Adding a task is adding a folder and its name to `TASK_FOLDERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torchlab.config import TrainConfig

TASK_FOLDERS = ("digits", "keypoints", "mnist", "patch", "ring")
FUNCTIONS = ("train", "evaluate", "predict", "format_prediction", "example_inputs")


@dataclass(frozen=True)
class Task:
    """A registered task: its config class and recipes, and where its functions live.

    train(cfg, run) -> RunResult; evaluate(model, meta, options) -> dict;
    predict(model, meta, inputs, options) -> list[dict]; format_prediction(record) -> str (one
    printed line); example_inputs(meta, options, count) -> tensor of the task's own inputs.
    """

    name: str
    help: str
    config_class: type
    recipes: dict[str, TrainConfig]
    package: str  # the task's folder as a module name: "torchlab.tasks.mnist"
    train: str = "train:train"
    evaluate: str | None = "infer:evaluate"
    predict: str | None = "infer:predict"
    format_prediction: str | None = "infer:format_prediction"
    example_inputs: str | None = "infer:example_inputs"
    models: tuple[str, ...] = ()  # the models a checkpoint of this task may hold
    description: str = ""  # longer text for `torchlab train TASK --help`
    flag_aliases: dict[str, tuple[str, Any, str]] = field(default_factory=dict)  # "--fp32": ("amp", False, help)
    cpu_recipe: str | None = None  # the recipe a run on the CPU gets when none is named ("default" elsewhere)
    # `torchlab tune`: the validation quantity a trial is judged by and which way is better (None: the task has no
    # validation split to search on), and the default search space, field -> "LOW:HIGH[:log]" or "A,B,C"
    tune_metric: tuple[str, str] | None = None
    search_space: dict[str, str] = field(default_factory=dict)

    def function(self, role: str) -> Callable[..., Any] | None:
        """The function for `role` (one of FUNCTIONS), imported now; None when the task has none."""
        if role not in FUNCTIONS:
            raise ValueError(f"unknown task function {role!r}; one of {', '.join(FUNCTIONS)}")
        reference = getattr(self, role)
        if reference is None:
            return None
        module, _, name = reference.partition(":")
        return getattr(importlib.import_module(module if "." in module else f"{self.package}.{module}"), name)


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if _TASKS.get(task.name, task) != task:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def _load() -> None:
    for folder in TASK_FOLDERS:
        importlib.import_module(f"{__name__}.{folder}.config")


def task_names() -> list[str]:
    """Every registered task, sorted."""
    _load()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The task registered as `name`; KeyError lists the known names."""
    _load()
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


__all__ = ["Task", "TASK_FOLDERS", "register_task", "task_names", "get_task"]
