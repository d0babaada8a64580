"""`torchlab ring`, `torchlab landscape`, `torchlab descent`: the first notebook's hand-set nets and
gradient-descent paths. The flags, their usage checks and the printing live here; the numbers and
figures come from torchlab.lessons (ring_lesson, landscape_lesson, descent_lesson)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from torchlab.errors import UsageError

# Limits on the size flags, so that every command ends within a minute or so on a laptop CPU.
MAX_POINTS = 1000  # ring --point: one printed line each
MAX_HIDDEN = 256  # landscape --hidden/--compare: the activation regions are counted on a 400x400 grid
MAX_COMPARE = 6  # landscape --compare: one curve each in one figure
MAX_PATH_STEPS = 20_000  # descent: --steps times the number of --eta values (one autograd call per step)
MAX_ETAS = 10  # descent --eta: one path each in one figure
PROGRESS_FROM = 20_000  # descent shows a progress bar (on a terminal) from this many steps in all


RING_HELP = "the hand-set 2->4->3->1 ring net: test points, misclassified area, best diamond, figures"
RING_DESCRIPTION = (
    "Build the hand-set ReLU net for the L1 ring a <= |x1|+|x2| <= b (31 parameters), score the "
    "notebook's seven test points (or --point), measure the area it gets wrong when it stands in for "
    "the circular ring a <= |x| <= b, and find the L1 ring (a', b') that gets the least wrong."
)

LANDSCAPE_HELP = "2->n->1 ReLU network landscapes: value at (1,-1), surface, contours, linear pieces"
LANDSCAPE_DESCRIPTION = (
    "Evaluate a 2->n->1 ReLU net (the notebook's n=3 weights, or random ones), draw its graph as a "
    "3-D surface and as contours with the kink lines, and count the linear pieces along the line "
    "x2 = a*x1 + b for several n, from the kinks and by autograd slopes."
)

DESCENT_HELP = "gradient descent on f = 3(x-1)^2 + y^2 + 4 and ascent on the mountain B, several learning rates"
DESCENT_DESCRIPTION = (
    "Follow the gradient (from autograd) downhill on f(x,y) = 3(x-1)^2 + y^2 + 4 from (2.5, 1.5) and "
    "uphill on B(x,y) = 4000 - 3(x-10)^2 - (y-3)^2 from (0, 0) for each learning rate; steps "
    "larger than 1/3 diverge."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ring", help=RING_HELP, description=RING_DESCRIPTION)
    p.add_argument("--a", type=float, default=1.0, help="inner radius (default: 1)")
    p.add_argument("--b", type=float, default=2.0, help="outer radius (default: 2)")
    p.add_argument(
        "--point",
        action="append",
        metavar="X1,X2",
        help="a point to classify (repeatable; write --point=-1,0.5 for a negative x1; "
        "default: the notebook's seven test points)",
    )
    p.add_argument(
        "--box",
        type=float,
        default=2.5,
        help="figures show [-box, box]^2 (default: 2.5, widened when needed to show the best diamond)",
    )
    _add_output_arguments(p, "ring")
    p.set_defaults(func=cmd_ring)

    p = sub.add_parser("landscape", help=LANDSCAPE_HELP, description=LANDSCAPE_DESCRIPTION)
    p.add_argument("--hidden", type=int, default=3, help="hidden units of the drawn net (default: 3)")
    p.add_argument(
        "--weights",
        choices=("seed", "random"),
        default="seed",
        help="seed: the notebook's n=3 weights (default); random: N(0,1) weights, N(0,0.2^2) biases",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for random weights (default: 0)")
    p.add_argument(
        "--line",
        type=float,
        nargs=2,
        default=(0.5, 0.3),
        metavar=("A", "B"),
        help="the line x2 = A*x1 + B (default: 0.5 0.3)",
    )
    p.add_argument(
        "--compare",
        type=int,
        nargs="+",
        default=(1, 3, 8),
        metavar="N",
        help="hidden sizes whose linear pieces are counted and plotted (default: 1 3 8)",
    )
    p.add_argument("--limit", type=float, default=2.0, help="plots show [-limit, limit]^2 (default: 2)")
    _add_output_arguments(p, "landscape")
    p.set_defaults(func=cmd_landscape)

    p = sub.add_parser("descent", help=DESCENT_HELP, description=DESCENT_DESCRIPTION)
    p.add_argument(
        "--eta",
        type=float,
        nargs="+",
        default=(0.05, 0.1, 0.25, 0.35),
        metavar="ETA",
        help="learning rates (default: 0.05 0.1 0.25 0.35)",
    )
    p.add_argument("--steps", type=int, default=20, help="steps per path (default: 20, as the notebook)")
    _add_output_arguments(p, "descent")
    p.set_defaults(func=cmd_descent)


def _add_output_arguments(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument(
        "--out",
        default=str(Path("checkpoints") / name),
        help=f"folder for the figures, written to OUT/figures (default: checkpoints/{name})",
    )
    p.add_argument("--no-figures", action="store_true", help="print the numbers only")


def _print(rows: dict[str, Any], figures: Path | None) -> None:
    from torchlab.cli.output import print_summary

    if figures is not None:
        rows["figures"] = str(figures)
    print_summary(rows)


def _parse_point(text: str) -> tuple[float, float]:
    from torchlab.runtime.guards import finite_pair

    return finite_pair(text, "--point", "1.5,0.2")


# ------------------------------------------------------------------------ ring


def cmd_ring(args: argparse.Namespace) -> int:
    from torchlab.data.facts import RADIUS_LIMIT, check_radii

    check_radii(args.a, args.b)
    if not (math.isfinite(args.box) and 0 < args.box <= 2 * RADIUS_LIMIT):
        raise UsageError(f"--box must be in (0, {2 * RADIUS_LIMIT:g}], got {args.box:g}")
    # after the checks: a usage error answers without importing torch
    from torchlab.lessons.ring import ring_lesson
    from torchlab.runtime.guards import at_most

    at_most("the number of --point flags", len(args.point or ()), MAX_POINTS, "one printed line each")
    points = [_parse_point(t) for t in args.point] if args.point else None
    lesson = ring_lesson(args.a, args.b, points, args.box, None if args.no_figures else _figures(args))
    rows: dict[str, Any] = {
        "model": f"ring-net a={lesson.a:g}, b={lesson.b:g}, {lesson.parameters} parameters",
        "W2": str([[round(v, 4) for v in row] for row in lesson.layer2_weight]),
        "b2": str([round(v, 4) for v in lesson.layer2_bias]),
    }
    for p in lesson.points:
        rows[f"point ({p.x1:g}, {p.x2:g})"] = f"score {p.score:+.4f}, in ring {p.in_ring} (|x1|+|x2| = {p.l1:.4g})"
    rows["agrees_with_l1_ring"] = lesson.agrees_with_l1_ring
    if lesson.matches_notebook is not None:
        rows["matches_notebook"] = lesson.matches_notebook
    ring_area, wrong, best = lesson.circular_ring_area, lesson.misclassified_area, lesson.best_misclassified_area
    rows.update(
        {
            "circular_ring_area": ring_area,
            "misclassified_area": (
                f"{wrong:.4f} (exact; the net on a 1000x1000 grid: {lesson.grid_misclassified_area:.4f})"
            ),
            "misclassified_fraction": f"{wrong / ring_area:.4f} of the circular ring's area",
            "best_diamond": f"a'={lesson.best_a:.4f}, b'={lesson.best_b:.4f}",
            "best_misclassified_area": f"{best:.4f} ({best / ring_area:.4f} of the ring's area)",
            "improvement": (
                f"{wrong - best:.4f} less misclassified area than a'=a, b'=b ({(wrong - best) / wrong:.1%} less)"
            ),
        }
    )
    _print(rows, lesson.figures)
    return 0


# ------------------------------------------------------------------- landscape


def cmd_landscape(args: argparse.Namespace) -> int:
    if args.hidden < 1 or any(n < 1 for n in args.compare):
        raise UsageError("hidden sizes (--hidden, --compare) must be >= 1")
    from torchlab.lessons.landscape import landscape_lesson
    from torchlab.runtime.guards import at_most, require_finite

    why = "the activation regions are counted on a 400x400 grid, one column per unit"
    at_most("--hidden", args.hidden, MAX_HIDDEN, why)
    at_most("every --compare size", max(args.compare), MAX_HIDDEN, why)
    at_most("the number of --compare sizes", len(args.compare), MAX_COMPARE, "one curve each in one figure")
    require_finite("--line A B", *args.line)
    if args.weights == "seed" and args.hidden != 3:
        raise UsageError(f"the notebook's weights are for --hidden 3, got --hidden {args.hidden}; add --weights random")
    if not (math.isfinite(args.limit) and args.limit > 0):
        raise UsageError(f"--limit must be > 0, got {args.limit}")
    lesson = landscape_lesson(
        args.hidden,
        args.weights,
        args.seed,
        tuple(args.line),
        args.compare,
        args.limit,
        None if args.no_figures else _figures(args),
    )
    (a, b), lim = lesson.line, lesson.limit
    rows: dict[str, Any] = {
        "model": f"{lesson.name}, {lesson.parameters} parameters",
        "phi(1, -1)": lesson.value,
        "linear_pieces_in_view": (
            f"{lesson.regions} (distinct on/off patterns of the hidden units on [-{lim:g}, {lim:g}]^2)"
        ),
        "line": f"x2 = {a:g}*x1 + {b:g}",
    }
    for c in lesson.compared:
        rows[f"pieces n={c.hidden}"] = (
            f"{c.pieces} on the whole line (at most n+1 = {c.hidden + 1}); "
            f"{c.pieces_in_view} for |x1| < {lim:g} (autograd slopes: {c.measured_in_view})"
        )
    _print(rows, lesson.figures)
    return 0


# --------------------------------------------------------------------- descent


def cmd_descent(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    from torchlab.lessons.descent import BOWL, MOUNTAIN, descent_lesson
    from torchlab.runtime.guards import at_most

    at_most("the number of --eta values", len(args.eta), MAX_ETAS, "one path each in one figure")
    at_most(
        "--steps",
        args.steps,
        MAX_PATH_STEPS // len(args.eta),
        f"at most {MAX_PATH_STEPS:,} steps over the {len(args.eta)} learning rates, one autograd call each",
    )
    if any(not (math.isfinite(eta) and eta > 0) for eta in args.eta):
        raise UsageError(f"every --eta must be a finite number > 0, got {list(args.eta)}")
    bar = _step_bar(2 * len(args.eta) * args.steps)
    try:
        lesson = descent_lesson(
            args.eta, args.steps, None if args.no_figures else _figures(args), bar.update if bar else None
        )
    finally:
        if bar is not None:
            bar.close()
    rows: dict[str, Any] = {}
    for problem, key, runs in ((BOWL, "descent", lesson.descent), (MOUNTAIN, "ascent", lesson.ascent)):
        rows[key] = (
            f"{problem.name} from {problem.start}, optimum {problem.optimum}; "
            f"eta < {problem.largest_stable_eta:.4g} converges"
        )
        for r in runs:
            rows[f"{key} eta={r.eta:g}"] = (
                f"after {lesson.steps} steps at ({r.end[0]:.4g}, {r.end[1]:.4g}), "
                f"value {r.value:.6g}, distance {r.distance:.4g}: {r.status}"
            )
    _print(rows, lesson.figures)
    return 0


def _figures(args: argparse.Namespace) -> Path:
    return Path(args.out) / "figures"


def _step_bar(total: int) -> Any:
    """A tqdm bar on stderr for long descents, when stderr is a terminal (None otherwise)."""
    import sys

    from torchlab.reporting.progress import mode

    if total < PROGRESS_FROM or mode(None, sys.stderr) is None:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="gradient steps", unit="step", file=sys.stderr, leave=False, mininterval=0.5)
