"""`torchlab gradcheck [MODEL|all]`: autograd against hand-derived, SymPy and finite-difference gradients."""

from __future__ import annotations

import argparse
import math
import secrets
import sys

from torchlab.errors import UsageError

HELP = "check autograd's gradients against hand-derived, SymPy and finite-difference ones"
DESCRIPTION = (
    "Compare PyTorch autograd, in float64 at fresh random points, with the course's hand-derived formulas, "
    "SymPy derivations and finite differences. One row per parameter and check; exit 1 when any row fails."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradcheck", help=HELP, description=DESCRIPTION)
    p.add_argument(
        "target",
        nargs="?",
        default="all",
        help="a registered model, a seed example (two-neuron, f, B, numpy-layers) or all (default)",
    )
    p.add_argument("--seed", type=int, help="repeat the random draws of an earlier run (default: fresh ones)")
    p.add_argument(
        "--budget",
        type=float,
        default=2.0,
        help="finite-difference work per model, in billions of multiply-adds (default: 2); more checks more directions",
    )
    p.set_defaults(func=cmd_gradcheck)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from torchlab.gradients.runner import check_names, run_checks

    names = check_names()
    if args.target != "all" and args.target not in names:
        raise UsageError(f"unknown model or example {args.target!r}; choose one of: all, {', '.join(names)}")
    if not (math.isfinite(args.budget) and args.budget > 0):
        raise UsageError(f"--budget must be a positive number (billions of multiply-adds), got {args.budget}")
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    print(f"seed: {seed} (torchlab gradcheck {args.target} --seed {seed} repeats these draws)")
    widths = (16, 28, 17, 11, 11, 6)
    header = ("model", "parameter", "method", "max abs err", "max rel err", "result")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  note")
    sys.stdout.flush()
    counts = {"pass": 0, "FAIL": 0, "skip": 0}
    for name in names if args.target == "all" else [args.target]:
        for row in run_checks(name, seed, args.budget * 1e9):
            counts[row.status] += 1
            cells = (row.model, row.parameter, row.method, _number(row.max_abs), _number(row.max_rel), row.status)
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + row.note)
        sys.stdout.flush()
    print(f"{counts['pass']} passed, {counts['FAIL']} failed, {counts['skip']} skipped")
    return 1 if counts["FAIL"] else 0


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"
