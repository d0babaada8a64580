"""`torchlab models` (every registered model, grouped by the task that trains it) and `torchlab summary MODEL`
(its layer table)."""

from __future__ import annotations

import argparse

from torchlab.errors import UsageError


def register_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the registered models by task, with their parameter counts",
        description="List every registered model under the task that trains it (`torchlab train TASK "
        "--model MODEL`): name, class, trainable parameters, description.",
    )
    p.set_defaults(func=cmd_models)


def register_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="layer-by-layer table (torchsummary) of a registered model",
        description="Print torchsummary's layer-by-layer table (output shapes, parameters) of a model.",
    )
    p.add_argument("model", help="a name from `torchlab models`")
    p.add_argument("--input-shape", type=int, nargs="+", help="one sample's shape, e.g. 1 96 96 (default: the model's)")
    p.set_defaults(func=cmd_summary)


def model_groups() -> list[tuple[str, list[str]]]:
    """(heading, model names) per task, its default model first, then the models no task trains (lessons)."""
    from torchlab.models import model_names
    from torchlab.tasks import get_task, task_names

    groups, seen = [], set()
    for name in task_names():
        task = get_task(name)
        models = [task.default_model, *(m for m in task.models if m != task.default_model)]
        choices = " | ".join(f"{m} (default)" if m == task.default_model else m for m in models)
        groups.append((f"{name}: torchlab train {name} --model {choices}", models))
        seen.update(models)
    rest = [m for m in model_names() if m not in seen]
    if rest:
        groups.append(("no task (hand-set or explored by the lessons: torchlab ring, torchlab landscape)", rest))
    return groups


def cmd_models(args: argparse.Namespace) -> int:
    from torchlab.models import count_parameters, get_model_spec

    groups = []
    for heading, names in model_groups():
        rows = []
        for name in names:
            spec = get_model_spec(name)
            rows.append((name, spec.cls.__name__, f"{count_parameters(spec.build()):,}", spec.description))
        groups.append((heading, rows))
    every = [row for _, rows in groups for row in rows] + [("model", "class", "parameters", "")]
    widths = [max(len(r[i]) for r in every) for i in range(3)]
    print(f"  {'model':<{widths[0]}}  {'class':<{widths[1]}}  {'parameters':>{widths[2]}}  description")
    for heading, rows in groups:
        print(heading)
        for name, cls, params, desc in rows:
            print(f"  {name:<{widths[0]}}  {cls:<{widths[1]}}  {params:>{widths[2]}}  {desc}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from torchlab.models import count_parameters, get_model_spec

    try:
        spec = get_model_spec(args.model)
    except KeyError as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    shape = tuple(args.input_shape) if args.input_shape else spec.input_shape
    if not shape:
        raise UsageError(f"model {args.model} has no default input shape; pass --input-shape")
    try:
        from torchsummary import summary
    except ImportError:
        raise UsageError("torchsummary is not installed; pip install torchsummary") from None
    if any(size < 1 for size in shape):
        raise UsageError(f"--input-shape sizes must be >= 1, got {' '.join(map(str, shape))}")
    model = spec.build()
    try:
        summary(model, shape, device="cpu")
    except RuntimeError as exc:
        detail = str(exc).splitlines()[0][:160]
        raise UsageError(
            f"input shape {tuple(shape)} does not fit {args.model} ({detail}); "
            f"its own input shape is {spec.input_shape}"
        ) from None
    print(f"{args.model}: {count_parameters(model):,} trainable parameters, input {shape}")
    return 0
