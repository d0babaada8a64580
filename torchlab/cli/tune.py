"""`torchlab tune TASK [flags]`: search a task's recipe with Optuna (torchlab.tune); one parser per task.

The task's ordinary flags (generated from its config, as for `train`) fix a field for every trial;
--search entries add to or replace the task's default search space. The space, the flags and the
study folder are checked before torch or Optuna is imported.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import TYPE_CHECKING, Any

from torchlab.cli.output import print_summary

if TYPE_CHECKING:
    from torchlab.tasks import Task

HELP = "search a task's recipe with Optuna: trials are ordinary runs, judged on the validation split"
DESCRIPTION = """Search {task}'s recipe with Optuna (pip install 'torchlab[tune]').

Each trial is an ordinary `torchlab train {task}` run into <out>/trials/NNNN/ (best.pt, last.pt,
history.csv, config.toml, and trial.json saying COMPLETE, PRUNED or FAILED), judged by {metric} on
the validation split (never the test split): the best value over its epochs. A trial whose curve is
worse than the median of the others at the same epoch is pruned there (--pruner).

The default search space:
{space}
--search FIELD=LOW:HIGH[:log] (a range; integers for an int field) or --search FIELD=A,B,C (a
choice) adds or replaces an entry; the task's flags below fix a field for every trial (e.g.
--hidden 32 --epochs 30).

The study lives in <out>/study.journal (an Optuna journal file) or in --storage (a database URL such
as postgresql://... or sqlite:///study.db, or a journal file on a shared disk): the same command on
several machines with one --storage runs one study, exactly --trials trials in all. --resume
continues a study that was stopped or killed (trials its dead process left running count as failed).

At the end: <out>/best.toml (the best trial's config; `torchlab train --config` reads it),
<out>/trials.csv, and figures in <out>/figures (optimization history, each trial's curve, parameter
importances); the ready `torchlab train` command is printed."""


def register(sub: argparse._SubParsersAction, with_tasks: bool = True) -> None:
    p = sub.add_parser(
        "tune", help=HELP, description="Search a task's recipe with Optuna; see torchlab tune TASK --help."
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK", parser_class=type(p))
    tasks.required = True
    if with_tasks:
        add_task_parsers(tasks)


def add_task_parsers(tasks: argparse._SubParsersAction) -> None:
    """One `tune TASK` parser per task with a validation metric, its fixing flags generated from the config."""
    from torchlab.cli.flags import add_config_flags
    from torchlab.tasks import ALIASES, get_task, task_for, task_names

    for name in [*task_names(), *ALIASES]:  # an old name is its task with its model fixed
        task = task_for(name)[0]
        if task.tune_metric is None:
            continue
        space = textwrap.fill(
            ", ".join(f"{k}={v}" for k, v in task.search_space.items()) or "none: give --search",
            width=96,
            initial_indent="  ",
            subsequent_indent="  ",
        )
        tp = tasks.add_parser(
            name,
            help=task.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            description=DESCRIPTION.format(task=name, metric=task.tune_metric[0], space=space),
        )
        add_study_flags(tp, task)
        add_config_flags(tp, task)
        tp.set_defaults(func=cmd_tune, task_entry=get_task(name))


def add_study_flags(parser: argparse.ArgumentParser, task: Task) -> None:
    s = parser.add_argument_group("study")
    s.add_argument("--trials", type=int, default=20, help="trials to run in all, over every worker (default: 20)")
    s.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="FIELD=LOW:HIGH[:log] | FIELD=A,B,C",
        help="search this field over a range (log: on a log scale) or among values; repeat for more fields",
    )
    s.add_argument(
        "--search-only", action="store_true", help="search only the --search fields, not the task's default space"
    )
    s.add_argument(
        "--pruner",
        default="median",
        choices=["median", "hyperband", "none"],
        help="stop a trial whose curve is worse than the others': median (after 5 trials and 2 epochs; "
        "default), hyperband, or none",
    )
    s.add_argument("--timeout", metavar="TIME", help="start no trial after this long: 90s, 10m, 2h (default: none)")
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on this machine, sharing the study (default: 1); for several machines run the same "
        "command on each with one --storage",
    )
    s.add_argument(
        "--storage",
        metavar="URL|FILE",
        help="where the study lives: a database URL (postgresql://..., sqlite:///study.db) or a journal "
        "file; an existing study there is joined (default: <out>/study.journal)",
    )
    s.add_argument("--study-name", help=f"the study's name in the storage (default: {task.name})")
    s.add_argument("--resume", action="store_true", help="continue the study in --out (stopped or killed)")
    s.add_argument("--out", help=f"the study folder (default: checkpoints/{task.name}-tune)")
    s.add_argument(
        "--recipe",
        default=None,
        choices=list(task.recipes),
        help="the recipe every trial starts from (default: default)",
    )
    s.add_argument("--seed", type=int, default=0, help="the seed of every trial's run, and of the sampler (default: 0)")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    s.add_argument("--no-figures", action="store_true", help="skip the study's figures (the table and best.toml stay)")


def cmd_tune(args: argparse.Namespace) -> int:
    """Check the space and flags without torch, run the study, print what it found."""
    from torchlab.cli.flags import overrides_from
    from torchlab.config import with_overrides
    from torchlab.runtime.device_names import check_device_name
    from torchlab.search.space import build_space
    from torchlab.tasks import task_for

    task = task_for(args.task)[0]  # an old name: its task, with its model's recipes
    fixed = overrides_from(args, task)
    base = with_overrides(task.recipes[args.recipe or "default"], **fixed)
    build_space(base, task.search_space, args.search, fixed, use_defaults=not args.search_only)
    check_device_name(args.device)
    from torchlab.search.storage import require_optuna

    require_optuna()
    from torchlab.search.study import tune

    result = tune(
        args.task,
        args.recipe,
        trials=args.trials,
        out=args.out,
        search=args.search,
        search_only=args.search_only,
        storage=args.storage,
        study_name=args.study_name,
        resume=args.resume,
        workers=args.workers,
        pruner=args.pruner,
        timeout=args.timeout,
        seed=args.seed,
        device=args.device,
        figures=not args.no_figures,
        **fixed,
    )
    summary: dict[str, Any] = {
        "task": result.task,
        "study": f"{result.study_name} in {result.storage}",
        "trials": ", ".join(f"{n} {WORDS[state]}" for state, n in result.states.items()),
    }
    if result.failed_orphans:
        summary["left running by a dead process, now failed"] = ", ".join(map(str, result.failed_orphans))
    if result.best_trial is None:
        summary["best"] = "no trial completed"
    else:
        summary.update(
            {
                "best trial": result.best_trial,
                f"best {result.metric}": result.best_value,
                "best params": ", ".join(f"{k}={_short(v)}" for k, v in result.best_params.items()),
                "best config": str(result.best_config),
            }
        )
    summary.update({"table": str(result.table), "figures": str(result.figures[0].parent) if result.figures else "-"})
    print_summary(summary)
    if result.command:
        print(f"train it: {result.command}")
    return 0


WORDS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
