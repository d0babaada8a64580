"""Every task's settings and named recipes, importable without torch.

A module here defines a task's config class (a frozen TrainConfig) and its recipes, and
registers a `TaskCard`. `torchlab train TASK --help`, the flags and the usage errors are built
from the cards alone, so the CLI answers them before importing torch; the task modules in
torchlab/tasks/ take their config class and recipes from here and add the functions that train
and use the model. Nothing in this package may import torch (tests/test_layout.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torchlab.config import TrainConfig
from torchlab.registry import Registry

RECIPE_MODULES = ("digits", "keypoints", "mnist", "patch", "ring")


@dataclass(frozen=True)
class TaskCard:
    """What the CLI and the API need to know of a task before training it."""

    name: str
    help: str
    config_class: type
    recipes: dict[str, TrainConfig]
    description: str = ""  # longer text for `torchlab train TASK --help`
    flag_aliases: dict[str, tuple[str, Any, str]] = field(default_factory=dict)  # "--fp32": ("amp", False, help)
    cpu_recipe: str | None = None  # the recipe a run on the CPU gets when none is named ("default" elsewhere)


_CARDS: Registry[TaskCard] = Registry("task", [f"{__name__}.{m}" for m in RECIPE_MODULES])


def register_card(card: TaskCard) -> TaskCard:
    return _CARDS.register(card.name, card)


def card_names() -> list[str]:
    return _CARDS.names()


def get_card(name: str) -> TaskCard:
    """The card registered as `name`; KeyError lists the known names."""
    return _CARDS.get(name)


__all__ = ["TaskCard", "register_card", "card_names", "get_card", "RECIPE_MODULES"]
