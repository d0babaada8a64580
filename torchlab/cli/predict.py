"""`torchlab predict CKPT INPUT... [--index N]`: inference from a checkpoint alone, one line per record."""

from __future__ import annotations

import argparse

from torchlab.cli.evaluate import add_inference_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="run a checkpoint on images, files or test-set samples",
        description="Load a checkpoint written by `torchlab train` and predict on the inputs its task "
        "takes (images, CSV files, points) or on test-set samples (--index).",
    )
    p.add_argument("checkpoint", help="path to a .pt file written by torchlab train")
    p.add_argument("inputs", nargs="*", help="input files (images, CSV, ...) as the task accepts")
    p.add_argument("--index", type=int, action="append", help="a test-set sample to predict (repeatable)")
    p.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="format of FOLDER/predictions.FORMAT (default: json; csv needs --out)",
    )
    p.add_argument(
        "--box",
        action="append",
        metavar="X,Y,W,H",
        dest="boxes",
        default=[],
        help="keypoint tasks: a face given by hand, in photo pixels (repeatable); skips detection",
    )
    p.add_argument(
        "--detect",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keypoint tasks: find faces with OpenCV (default: when torchlab[faces] is installed; "
        "--no-detect: center crop)",
    )
    p.add_argument("--submission", help="IdLookupTable.csv: write a Kaggle submission (keypoint tasks)")
    p.add_argument(
        "--out",
        metavar="FOLDER",
        help="write the predictions to FOLDER/predictions.FORMAT (a task may add files there, "
        "such as keypoint overlays)",
    )
    add_inference_arguments(p)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    import torchlab
    from torchlab.tasks.keypoints.faces import parse_box

    loaded = torchlab.open_checkpoint(args.checkpoint, device=args.device)
    records = torchlab.predict(
        loaded,
        list(args.inputs),
        index=args.index or (),
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        data=args.data,
        out=args.out,
        format=args.format,
        submission=args.submission,
        boxes=[parse_box(b) for b in args.boxes],
        detect=args.detect,
    )
    line = loaded.task.function("format_prediction") or str
    print("\n".join(line(r) for r in records))
    return 0
