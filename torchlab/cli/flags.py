"""Command-line flags generated from a task's config class, and back to overrides.

Each config field becomes `--field-name` (type, choices, tuple length and help from the
field's metadata); booleans get `--x/--no-x`. A flag left out is absent from the parsed
namespace, so only what the user typed becomes an override of the recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from torchlab.config import field_types, flag_name
from torchlab.tasks import Task

GROUP_TITLES = {
    "data": "data",
    "model": "model",
    "training": "training (defaults come from the recipe)",
    "speed": "speed",
}


def _parts(hint: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of `int | None`-style hints."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return rest[0], len(rest) < len(args)
    return hint, False


def _converter(kind: Any, optional: bool):
    def convert(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        return kind(text)

    convert.__name__ = kind.__name__  # argparse names the type in "invalid int value" messages
    return convert


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return "none" if value is None else str(value)


def recipe_defaults(task: Task, name: str) -> str:
    """'default: 3; long: 12' when the recipes differ on field `name`, else 'default: 3'."""
    values = {recipe: getattr(cfg, name) for recipe, cfg in task.recipes.items()}
    if len({repr(v) for v in values.values()}) == 1:
        return f"default: {_shown(values['default'])}"
    return "; ".join(f"{recipe}: {_shown(v)}" for recipe, v in values.items())


def add_config_flags(parser: argparse.ArgumentParser, task: Task) -> None:
    """One flag per config field, grouped as the metadata says, plus the task's aliases."""
    hints = field_types(task.config_class)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(task.config_class):
        meta = f.metadata
        title = GROUP_TITLES.get(meta.get("group", "training"), meta.get("group", "training"))
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        kind, optional = _parts(hints[f.name])
        help_text = f"{meta.get('help', '')} ({recipe_defaults(task, f.name)})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            kwargs.update(type=_converter(typing.get_args(kind)[0], False), nargs=meta.get("nargs") or "+")
        else:
            kwargs["type"] = _converter(kind, optional)
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        group.add_argument(flag_name(f.name), **kwargs)
    for flag, (name, value, help_text) in task.flag_aliases.items():
        parser.add_argument(
            flag, dest=name, action="store_const", const=value, default=argparse.SUPPRESS, help=help_text
        )


def recipe_list(task: Task) -> str:
    """'default; seed' or, for a task whose models have recipes of their own, 'default; seed; cpu (keypoint-net)'."""
    if not task.model_recipes:
        return "; ".join(task.recipes)
    owners = {name: [m for m, recipes in task.model_recipes.items() if name in recipes] for name in task.recipe_names()}
    return "; ".join(
        name if len(models) == len(task.model_recipes) else f"{name} ({', '.join(models)} only)"
        for name, models in owners.items()
    )


def add_run_flags(parser: argparse.ArgumentParser, task: Task, name: str | None = None) -> None:
    """The flags of the run itself: recipe, device, seed, output folder, resume, dry run, progress, figures.

    name: what the command line calls the task (an alias such as keypoint-fcn names its own default folder).
    """
    r = parser.add_argument_group("run")
    chosen = f"default: default, or {task.cpu_recipe} on a CPU" if task.cpu_recipe else "default: default"
    shown = f"--model {task.default_model}'s recipe" if task.model_recipes else "each recipe"
    r.add_argument(
        "--recipe",
        default=None,
        choices=task.recipe_names(),
        help=f"named set of fields ({recipe_list(task)}; {chosen}); the defaults above show {shown}'s values",
    )
    r.add_argument(
        "--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto = accelerator if present)"
    )
    r.add_argument(
        "--config",
        metavar="FILE.toml",
        help="read fields from a TOML file, e.g. a run's config.toml (the recipe's values, then the "
        "file's, then these flags'); its task, recipe and seed count where no flag gives them, so "
        "`torchlab train --config RUN/config.toml --out NEW` replays RUN",
    )
    r.add_argument(
        "--seed", type=int, default=None, help="seed for Python, NumPy and torch (default: 0, or the --config file's)"
    )
    r.add_argument(
        "--out", help=f"output folder for checkpoints, history and figures (default: checkpoints/{name or task.name})"
    )
    r.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        type=_resume_value,
        metavar="auto",
        help="continue from <out>/last.pt; --resume auto: continue when last.pt exists, else start the "
        "run (under torchrun --max-restarts, a restarted worker continues from last.pt by itself)",
    )
    r.add_argument(
        "--checkpoint-every",
        type=int,
        default=1,
        metavar="N",
        help="write last.pt (and best.pt) after every N-th epoch and after the last; a crash or a "
        "lost worker loses at most N epochs (default: 1)",
    )
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its checkpoints, history and figures are removed first)",
    )
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="train one batch and validate one batch of the real data and model, print their shapes, the "
        "parameter count, the losses and the memory, and write nothing",
    )
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.add_argument("--no-figures", action="store_true", help="skip writing figures")
    r.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log every epoch's quantities, the lr per step and the figures to <out>/tensorboard "
        "(pip install torchlab[tensorboard])",
    )


def _resume_value(text: str) -> str:
    if text != "auto":
        raise argparse.ArgumentTypeError(f"expected no value or 'auto' (resume when last.pt exists), got {text!r}")
    return text


def overrides_from(args: argparse.Namespace, task: Task) -> dict[str, Any]:
    """The config fields the user set on the command line."""
    names = {f.name for f in dataclasses.fields(task.config_class)}
    return {k: v for k, v in vars(args).items() if k in names}


def add_script_flags(parser: argparse.ArgumentParser, task: Task) -> None:
    """The flags of a training script in scripts/: every config field, generated as for `torchlab train TASK`,
    then the recipe, device, seed, output folder and figures."""
    add_config_flags(parser, task)
    run = parser.add_argument_group("run")
    run.add_argument(
        "--recipe",
        default=None if task.cpu_recipe else "default",
        choices=task.recipe_names(),
        help=f"the named config to start from ({recipe_list(task)}; default: default"
        + (f", or {task.cpu_recipe} on a CPU)" if task.cpu_recipe else ")"),
    )
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    run.add_argument("--seed", type=int, default=0, help="seed of the weights, the split and the batches (default: 0)")
    run.add_argument("--out", default=f"checkpoints/script-{task.name}", help="folder for checkpoints and figures")
    run.add_argument("--no-figures", action="store_true", help="skip the figures")


def task_from_config_file(argv: list[str]) -> list[str]:
    """`train --config FILE ...` without a task: the task the file names, put after `train` (torch-free)."""
    words = list(argv)
    at = words.index("train")
    if at + 1 < len(words) and not words[at + 1].startswith("-"):
        return words  # a task is named (or a word argparse will answer)
    files = [w.split("=", 1)[1] for w in words if w.startswith("--config=")]
    files += [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--config"]
    if not files:
        return words
    from torchlab.runtime.config_file import read_config_file

    task = read_config_file(files[-1]).task
    if task is None:
        from torchlab.errors import UsageError

        raise UsageError(f"{files[-1]} names no task; give one: torchlab train TASK --config {files[-1]}")
    return words[: at + 1] + [task] + words[at + 1 :]
