"""The core sub-commands: models, train, evaluate, predict, summary."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from torchlab.errors import UsageError


def register(sub: argparse._SubParsersAction, with_tasks: bool = True) -> None:
    p = sub.add_parser("models", help="list the registered models with their parameter counts",
                       description="List every registered model: name, class, trainable parameters, description.")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a task; writes checkpoints, history.csv and figures",
                       description="Train a task with one of its recipes; every setting of the recipe is a flag.")
    tasks = p.add_subparsers(dest="task", metavar="TASK", parser_class=type(p))
    tasks.required = True
    if with_tasks:
        _add_task_parsers(tasks)

    p = sub.add_parser("evaluate", help="metrics of a checkpoint on its task's test split",
                       description="Load a checkpoint written by `torchlab train` and measure it on its task's test "
                                   "(or validation) data.")
    p.add_argument("checkpoint", help="path to a .pt file written by torchlab train")
    _add_inference_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="run a checkpoint on images, files or test-set samples",
                       description="Load a checkpoint written by `torchlab train` and predict on the inputs its task "
                                   "takes (images, CSV files, points) or on test-set samples (--index).")
    p.add_argument("checkpoint", help="path to a .pt file written by torchlab train")
    p.add_argument("inputs", nargs="*", help="input files (images, CSV, ...) as the task accepts")
    p.add_argument("--index", type=int, action="append", help="a test-set sample to predict (repeatable)")
    p.add_argument("--format", choices=("json", "csv"), default="json",
                   help="format of FOLDER/predictions.FORMAT (default: json; csv needs --out)")
    p.add_argument("--box", action="append", metavar="X,Y,W,H", dest="boxes", default=[],
                   help="keypoint tasks: a face given by hand, in photo pixels (repeatable); skips detection")
    p.add_argument("--detect", action=argparse.BooleanOptionalAction, default=None,
                   help="keypoint tasks: find faces with OpenCV (default: when torchlab[faces] is installed; "
                        "--no-detect: centre crop)")
    p.add_argument("--submission", help="IdLookupTable.csv: write a Kaggle submission (keypoint tasks)")
    p.add_argument("--out", metavar="FOLDER",
                   help="write the predictions to FOLDER/predictions.FORMAT (a task may add files there, "
                        "such as keypoint overlays)")
    _add_inference_arguments(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("summary", help="layer-by-layer table (torchsummary) of a registered model",
                       description="Print torchsummary's layer-by-layer table (output shapes, parameters) of a model.")
    p.add_argument("model", help="a name from `torchlab models`")
    p.add_argument("--input-shape", type=int, nargs="+", help="one sample's shape, e.g. 1 96 96 (default: the model's)")
    p.set_defaults(func=cmd_summary)


def _add_task_parsers(tasks: argparse._SubParsersAction) -> None:
    """One `train TASK` parser per task card (torchlab.recipes: no torch), its flags generated from its config."""
    from torchlab.commands.flags import add_config_flags, add_run_flags
    from torchlab.recipes import card_names, get_card

    for name in card_names():
        card = get_card(name)
        tp = tasks.add_parser(name, help=card.help, description=card.description or card.help,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        add_config_flags(tp, card)
        add_run_flags(tp, card)
        tp.set_defaults(func=cmd_train, task_card=card)


def _add_inference_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--data-dir", default="data", help="data folder for tasks with files (default: data/)")
    p.add_argument("--data", help="a specific data file (e.g. the keypoints training.csv)")
    p.add_argument("--batch-size", type=int, default=1024, help="evaluation batch size (default: 1024)")


def cmd_models(args: argparse.Namespace) -> int:
    from torchlab.models import count_parameters, get_model_spec, model_names

    rows = []
    for name in model_names():
        spec = get_model_spec(name)
        rows.append((name, spec.cls.__name__, f"{count_parameters(spec.build()):,}", spec.description))
    widths = [max(len(r[i]) for r in rows + [("model", "class", "parameters", "")]) for i in range(3)]
    print(f"{'model':<{widths[0]}}  {'class':<{widths[1]}}  {'parameters':>{widths[2]}}  description")
    for name, cls, params, desc in rows:
        print(f"{name:<{widths[0]}}  {cls:<{widths[1]}}  {params:>{widths[2]}}  {desc}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from torchlab.commands.flags import overrides_from
    from torchlab.config import with_overrides
    from torchlab.device_names import check_device_name
    from torchlab.outdir import check_output_folder

    card = args.task_card
    overrides = overrides_from(args, card)
    # Usage errors are answered before torch is imported: a bad setting, device name or output folder.
    for recipe in {args.recipe or "default", args.recipe or card.cpu_recipe or "default"}:
        with_overrides(card.recipes[recipe], **overrides)
    check_device_name(args.device)
    check_output_folder(Path(args.out) if args.out else Path("checkpoints") / card.name, args.resume, args.overwrite)

    import torchlab
    from torchlab import distributed

    result = torchlab.train(card.name, args.recipe, out=args.out, device=args.device, seed=args.seed,
                            resume=args.resume, progress=not args.no_progress,
                            figures=not args.no_figures, tensorboard=args.tensorboard,
                            overwrite=args.overwrite, **overrides)
    if distributed.current().is_main:
        print_summary(result.summary)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torchlab

    loaded = torchlab.open_checkpoint(args.checkpoint, device=args.device)
    metrics = torchlab.evaluate(loaded, batch_size=args.batch_size, data_dir=args.data_dir, data=args.data)
    print(f"checkpoint: {args.checkpoint} (task {loaded.meta['task']}, epoch {loaded.meta.get('epoch', '?')})")
    print_summary(metrics)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torchlab
    from torchlab.faces import parse_box

    loaded = torchlab.open_checkpoint(args.checkpoint, device=args.device)
    records = torchlab.predict(loaded, list(args.inputs), index=args.index or (), batch_size=args.batch_size,
                               data_dir=args.data_dir, data=args.data, out=args.out, format=args.format,
                               submission=args.submission, boxes=[parse_box(b) for b in args.boxes],
                               detect=args.detect)
    print("\n".join(loaded.task.format_prediction(r) for r in records))
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
        raise UsageError(f"input shape {tuple(shape)} does not fit {args.model} ({detail}); "
                         f"its own input shape is {spec.input_shape}") from None
    print(f"{args.model}: {count_parameters(model):,} trainable parameters, input {shape}")
    return 0


def print_summary(summary: dict) -> None:
    """`key: value` lines; floats with 4 decimals (accuracy: 0.9833)."""
    for key, value in summary.items():
        if isinstance(value, float) and math.isfinite(value):
            value = f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
        print(f"{key}: {value}")
    sys.stdout.flush()
