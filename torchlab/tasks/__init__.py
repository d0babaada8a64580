"""Trainable tasks, by name: `torchlab.train(TASK)` and `torchlab train TASK` look them up here.

Each module listed in `TASK_MODULES` takes its config class and recipes from torchlab.recipes
(where they live without torch, for the CLI), defines plain train / evaluate / predict
functions, and registers a `TaskSpec`. Helper modules in this package are not tasks and are
not listed.
"""

from __future__ import annotations

from torchlab.registry import Registry
from torchlab.tasks.base import TaskSpec

TASK_MODULES = ("digits", "keypoints", "mnist", "patch", "ring")
_TASKS: Registry[TaskSpec] = Registry("task", [f"{__name__}.{m}" for m in TASK_MODULES])


def register_task(spec: TaskSpec) -> TaskSpec:
    return _TASKS.register(spec.name, spec)


def task_names() -> list[str]:
    return _TASKS.names()


def get_task(name: str) -> TaskSpec:
    """The task registered as `name`; KeyError lists the known names."""
    return _TASKS.get(name)


__all__ = ["TaskSpec", "register_task", "task_names", "get_task"]
