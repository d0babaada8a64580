"""`torchlab train TASK [flags]`: one parser per task, its flags generated from the task's config.

Usage errors (a bad field value, device name or output folder) are answered before torch is
imported; then `torchlab.train` runs the task and the summary it returns is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torchlab.cli.output import print_summary


def register(sub: argparse._SubParsersAction, with_tasks: bool = True) -> None:
    p = sub.add_parser(
        "train",
        help="train a task; writes checkpoints, history.csv and figures",
        description="Train a task with one of its recipes; every field of the recipe is a flag. The "
        "old task names (digit-mlp, keypoint-net, ...) are aliases: a task with its model "
        "fixed.",
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK", parser_class=type(p))
    tasks.required = True
    if with_tasks:
        add_task_parsers(tasks)


def add_task_parsers(tasks: argparse._SubParsersAction) -> None:
    """One `train TASK` parser per registered task and per old task name (an alias: its task with its model
    fixed), its flags generated from the task's config (torchlab.tasks: no torch)."""
    from torchlab.cli.flags import add_config_flags, add_run_flags
    from torchlab.tasks import ALIASES, get_task, task_for, task_names

    for name in [*task_names(), *ALIASES]:
        task, model = task_for(name)
        text = task.help if model is None else f"alias of {task.name} --model {model}"
        tp = tasks.add_parser(
            name,
            help=text,
            description=task.description or task.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_config_flags(tp, task)
        add_run_flags(tp, task, name)
        tp.set_defaults(func=cmd_train, task_entry=get_task(name))


def cmd_train(args: argparse.Namespace) -> int:
    """Check the flags without torch, train (or dry-run), print the summary or the dry run's report (rank 0 only)."""
    from torchlab.cli.flags import overrides_from
    from torchlab.config import with_overrides
    from torchlab.errors import UsageError
    from torchlab.runtime.device_names import check_device_name
    from torchlab.runtime.output_folder import (
        check_checkpoint_every,
        check_output_folder,
        resolve_resume,
    )
    from torchlab.tasks import task_for

    flags = overrides_from(args, args.task_entry)  # the fields typed on the command line
    overrides = dict(flags)
    # Usage errors are answered before torch is imported: a bad config file, field value, recipe, device or folder.
    file_recipe = None
    if args.config:
        from torchlab.api import read_run_config

        _, file_recipe, _, file_values = read_run_config(args.config, args.task, args.recipe, args.seed)
        overrides = {**file_values, **overrides}
    task, model = task_for(args.task, overrides.get("model"))  # the recipes of the model given (or the alias's)
    if model is not None:
        overrides["model"] = model
    chosen = args.recipe or file_recipe
    if chosen is not None and chosen not in task.recipes:
        which = f"{args.task} --model {model}" if model is not None and args.task == task.name else args.task
        raise UsageError(f"unknown recipe {chosen!r} for {which}; choose one of: {', '.join(task.recipes)}")
    if args.config:
        try:
            with_overrides(task.recipes[chosen or "default"], **file_values)
        except UsageError as exc:
            raise UsageError(f"{args.config}: {exc}") from None
    for recipe in {chosen or "default", chosen or task.cpu_recipe or "default"}:
        with_overrides(task.recipes[recipe], **overrides)
    check_device_name(args.device)
    check_checkpoint_every(args.checkpoint_every)
    out = Path(args.out) if args.out else Path("checkpoints") / args.task
    resume, overwrite = resolve_resume(out, args.resume, args.overwrite)  # a torchrun restart resumes
    if resume or not args.dry_run:  # a dry run writes nothing: a folder that holds a run is no obstacle
        check_output_folder(out, resume, overwrite)

    from torchlab.api import train
    from torchlab.engine.dry_run import DryRunReport
    from torchlab.runtime import distributed

    result = train(
        args.task,
        args.recipe,
        out=args.out,
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        progress=not args.no_progress,
        figures=not args.no_figures,
        tensorboard=args.tensorboard,
        overwrite=args.overwrite,
        dry_run=args.dry_run,
        config_file=args.config,
        checkpoint_every=args.checkpoint_every,
        **{**flags, **({"model": model} if model is not None else {})},
    )
    if not distributed.current().is_main:
        return 0
    if isinstance(result, DryRunReport):
        print("\n".join(result.lines()))
    else:
        print_summary(result.summary)
    return 0
