"""`torchlab compare RUN RUN... [--out FILE]`: runs side by side, a table and a figure of their curves."""

from __future__ import annotations

import argparse

HELP = "compare runs: their curves in one figure, and a table of the config fields that differ and their metrics"
DESCRIPTION = (
    "Read two or more run folders (what torchlab train --out writes) and draw their training (solid) "
    "and validation (dashed) curves in one figure, one color per run, each run's best epoch of the "
    "monitored quantity starred; then print one column per run: task, recipe, the config fields "
    "that differ (— where a run's task has no such field), epochs, the best value and its epoch, the last "
    "epoch's metrics and those measured after training (test accuracy, ...). Nothing is trained."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help=HELP, description=DESCRIPTION)
    p.add_argument(
        "runs", nargs="+", metavar="RUN", help="a run folder (e.g. checkpoints/digits) or one of its files; two or more"
    )
    p.add_argument(
        "--out",
        default="compare.png",
        metavar="FILE",
        help="the figure: a .png file, or a folder to write compare.png into (default: compare.png)",
    )
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from torchlab.reporting.compare import compare

    comparison = compare(args.runs, out=args.out)
    for line in comparison.table():
        print(line)
    print(f"\nfigure: {comparison.figure}")
    return 0
