"""Trainable tasks, by name: `torchlab train TASK` dispatches here.

Each module in this package defines one or more `Task` subclasses and registers an
instance with `register_task`; modules are discovered automatically.
"""

from __future__ import annotations

from torchlab.discovery import import_submodules
from torchlab.tasks.base import Task

_TASKS: dict[str, Task] = {}
_discovered = False


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        import_submodules(__name__, __path__, skip=("base",))


def task_names() -> list[str]:
    _discover()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The task registered as `name`; KeyError lists the known names."""
    _discover()
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


__all__ = ["Task", "register_task", "task_names", "get_task"]
