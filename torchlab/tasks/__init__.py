"""Every task by name: what `torchlab train TASK` and `torchlab.train(TASK)` look up.

A task is a problem you train for (digits, mnist, patch, ring, keypoints); its config's `model`
field picks one of the task's models (`--model`), and a task whose models want different
recipes (keypoints) keeps a recipe set per model. The names tasks had when each was one model
(digit-mlp, keypoint-net, ...) stay as ALIASES: an alias is its task with its model fixed.

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

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from torchlab.config import TrainConfig
from torchlab.errors import UsageError

TASK_FOLDERS = ("digits", "keypoints", "mnist", "patch", "ring")
FUNCTIONS = ("train", "evaluate", "predict", "format_prediction", "example_inputs")

# The old task names, one model each: name -> (task, model). Old commands, API calls and checkpoints use them.
ALIASES: dict[str, tuple[str, str]] = {
    "digit-mlp": ("digits", "digit-mlp"),
    "keypoint-cnn": ("keypoints", "keypoint-cnn"),
    "keypoint-fcn": ("keypoints", "keypoint-fcn"),
    "keypoint-net": ("keypoints", "keypoint-net"),
    "patch-linear": ("patch", "patch-linear"),
    "ring-mlp": ("ring", "ring-mlp"),
}


@dataclass(frozen=True)
class Task:
    """A registered task: its config class and recipes, and where its functions live.

    train(cfg, run) -> RunResult; evaluate(model, meta, options) -> dict;
    predict(model, meta, inputs, options) -> list[dict]; format_prediction(record) -> str (one
    printed line); example_inputs(meta, options, count) -> tensor of the task's own inputs.
    """

    name: str
    help: str
    config_class: type  # its `model` field picks one of `models`
    recipes: Mapping[str, TrainConfig]  # the default model's (the one recipes["default"].model names)
    package: str  # the task's folder as a module name: "torchlab.tasks.mnist"
    train: str = "train:train"
    evaluate: str | None = "infer:evaluate"
    predict: str | None = "infer:predict"
    format_prediction: str | None = "infer:format_prediction"
    example_inputs: str | None = "infer:example_inputs"
    models: tuple[str, ...] = ()  # the models of this task: its config's `model` choices, what its checkpoints hold
    model_recipes: Mapping[str, Mapping[str, TrainConfig]] = field(default_factory=dict)  # models whose recipes differ
    description: str = ""  # longer text for `torchlab train TASK --help`
    flag_aliases: dict[str, tuple[str, Any, str]] = field(default_factory=dict)  # "--fp32": ("amp", False, help)
    cpu_recipe: str | None = None  # the recipe a run on the CPU gets when none is named ("default" elsewhere)
    # `torchlab tune`: the validation quantity a trial is judged by and which way is better (None: the task has no
    # validation split to search on), and the default search space, field -> "LOW:HIGH[:log]" or "A,B,C"
    tune_metric: tuple[str, str] | None = None
    search_space: dict[str, str] = field(default_factory=dict)

    @property
    def default_model(self) -> str:
        """The model a run gets when none is named."""
        return str(self.recipes["default"].model)  # type: ignore[attr-defined]

    def recipe_names(self) -> list[str]:
        """Every recipe name of any of the task's models, "default" first."""
        names = dict.fromkeys(self.recipes)
        for recipes in self.model_recipes.values():
            names.update(dict.fromkeys(recipes))
        return list(names)

    def for_model(self, model: str | None) -> Task:
        """This task with the recipes of `model` (None: the default model); the CPU recipe only where it has one."""
        if model is None or model not in self.model_recipes:
            if model is not None and model not in self.models:
                raise UsageError(f"--model must be one of {', '.join(self.models)}, got {model!r}")
            return self
        recipes = self.model_recipes[model]
        return dataclasses.replace(
            self, recipes=recipes, model_recipes={}, cpu_recipe=self.cpu_recipe if self.cpu_recipe in recipes else None
        )

    @overload
    def function(self, role: Literal["train"]) -> Callable[..., Any]: ...  # `train` is never None

    @overload
    def function(self, role: str) -> Callable[..., Any] | None: ...

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
    """Every registered task, sorted (not the aliases: see ALIASES)."""
    _load()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The task registered as `name`, or the task of the alias `name`; KeyError lists the known names."""
    _load()
    if name in ALIASES:
        name = ALIASES[name][0]
    if name not in _TASKS:
        raise KeyError(
            f"unknown task {name!r}; known: {', '.join(sorted(_TASKS))} (or an old name: {', '.join(ALIASES)})"
        )
    return _TASKS[name]


def task_for(name: str, model: str | None = None) -> tuple[Task, str | None]:
    """(the task `name` names, with the recipes of its model; the model `name` or `model` fixes).

    An alias fixes its model: `model` may repeat it, and anything else is a UsageError. None as the
    model: the recipe's own (the task's default model, or what a recipe such as mnist's post names).
    An unknown name is a KeyError (see get_task).
    """
    task = get_task(name)
    fixed = ALIASES[name][1] if name in ALIASES else None
    if fixed is not None and model is not None and model != fixed:
        raise UsageError(
            f"{name} is {task.name} with --model {fixed}; drop --model {model}, or train {task.name} --model {model}"
        )
    chosen = fixed or model
    return task.for_model(chosen), chosen


__all__ = ["ALIASES", "Task", "TASK_FOLDERS", "register_task", "task_names", "get_task", "task_for"]
