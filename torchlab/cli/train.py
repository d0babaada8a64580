"""`torchlab train TASK [flags]`: one parser per task, its flags generated from the task's config.

Usage errors (a bad setting, device name or output folder) are answered before torch is
imported; then `torchlab.train` runs the task and the summary it returns is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torchlab.cli.output import print_summary


def register(sub: argparse._SubParsersAction, with_tasks: bool = True) -> None:
    p = sub.add_parser("train", help="train a task; writes checkpoints, history.csv and figures",
                       description="Train a task with one of its recipes; every setting of the recipe is a flag.")
    tasks = p.add_subparsers(dest="task", metavar="TASK", parser_class=type(p))
    tasks.required = True
    if with_tasks:
        add_task_parsers(tasks)


def add_task_parsers(tasks: argparse._SubParsersAction) -> None:
    """One `train TASK` parser per registered task (torchlab.tasks: no torch), its flags generated from its config."""
    from torchlab.cli.flags import add_config_flags, add_run_flags
    from torchlab.tasks import get_task, task_names

    for name in task_names():
        task = get_task(name)
        tp = tasks.add_parser(name, help=task.help, description=task.description or task.help,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        add_config_flags(tp, task)
        add_run_flags(tp, task)
        tp.set_defaults(func=cmd_train, task_entry=task)


def cmd_train(args: argparse.Namespace) -> int:
    """Check the flags without torch, train (or dry-run), print the summary or the dry run's report (rank 0 only)."""
    from torchlab.cli.flags import overrides_from
    from torchlab.config import with_overrides
    from torchlab.runtime.device_names import check_device_name
    from torchlab.runtime.output_folder import (
        check_checkpoint_every,
        check_output_folder,
        resolve_resume,
    )

    task = args.task_entry
    overrides = overrides_from(args, task)
    # Usage errors are answered before torch is imported: a bad setting, device name or output folder.
    for recipe in {args.recipe or "default", args.recipe or task.cpu_recipe or "default"}:
        with_overrides(task.recipes[recipe], **overrides)
    check_device_name(args.device)
    check_checkpoint_every(args.checkpoint_every)
    out = Path(args.out) if args.out else Path("checkpoints") / task.name
    resume, overwrite = resolve_resume(out, args.resume, args.overwrite)  # a torchrun restart resumes
    if resume or not args.dry_run:  # a dry run writes nothing: a folder that holds a run is no obstacle
        check_output_folder(out, resume, overwrite)

    from torchlab.api import train
    from torchlab.engine.dry_run import DryRunReport
    from torchlab.runtime import distributed

    result = train(task.name, args.recipe, out=args.out, device=args.device, seed=args.seed,
                   resume=args.resume, progress=not args.no_progress, figures=not args.no_figures,
                   tensorboard=args.tensorboard, overwrite=args.overwrite, dry_run=args.dry_run,
                   checkpoint_every=args.checkpoint_every, **overrides)
    if not distributed.current().is_main:
        return 0
    if isinstance(result, DryRunReport):
        print("\n".join(result.lines()))
    else:
        print_summary(result.summary)
    return 0
