"""`torchlab evaluate CKPT`: a checkpoint's metrics on its task's test (or validation) data."""

from __future__ import annotations

import argparse

from torchlab.cli.output import print_summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="metrics of a checkpoint on its task's test split",
        description="Load a checkpoint written by `torchlab train` and measure it on its task's test "
        "(or validation) data.",
    )
    p.add_argument("checkpoint", help="path to a .pt file written by torchlab train")
    add_inference_arguments(p)
    p.set_defaults(func=cmd_evaluate)


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--data-dir", default="data", help="data folder for tasks with files (default: data/)")
    p.add_argument("--data", help="a specific data file (e.g. the keypoints training.csv)")
    p.add_argument("--batch-size", type=int, default=1024, help="evaluation batch size (default: 1024)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torchlab

    loaded = torchlab.open_checkpoint(args.checkpoint, device=args.device)
    metrics = torchlab.evaluate(loaded, batch_size=args.batch_size, data_dir=args.data_dir, data=args.data)
    print(f"checkpoint: {args.checkpoint} (task {loaded.meta['task']}, epoch {loaded.meta.get('epoch', '?')})")
    print_summary(metrics)
    return 0
