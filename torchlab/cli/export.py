"""`torchlab export CKPT --format onnx|pt2|torchscript --out FILE`: a file for inference outside torchlab."""

from __future__ import annotations

import argparse
import json

HELP = "export a checkpoint to ONNX, torch.export (pt2) or TorchScript, checked against the checkpoint's outputs"
DESCRIPTION = (
    "Write the checkpoint's model as an ONNX file (run it with onnxruntime), a torch.export program "
    "(pt2: torch.export.load(FILE).module() in any process with torch) or a TorchScript file "
    "(deprecated upstream: prefer pt2), with a free batch size. The input normalization, task, classes and "
    "input shape go into the "
    "file's metadata; the inputs are not normalized inside the file. Unless --no-check, the exported "
    "file is run on a batch of inputs and must give the checkpoint's outputs (to 1e-4 relative to the "
    "largest output), or nothing is written. ONNX needs `pip install torchlab[onnx]`."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help=HELP, description=DESCRIPTION)
    p.add_argument("checkpoint", help="a torchlab checkpoint, e.g. checkpoints/digits/best.pt")
    p.add_argument(
        "--format",
        dest="fmt",
        default="onnx",
        choices=["onnx", "pt2", "torchscript"],
        help="onnx (default), pt2 (torch.export) or torchscript (deprecated upstream: prefer pt2)",
    )
    p.add_argument(
        "--out",
        help="the file to write (default: <model>.onnx, <model>.pt2 or <model>.torchscript.pt beside the checkpoint)",
    )
    p.add_argument("--no-check", action="store_true", help="skip the parity check against the checkpoint model")
    p.add_argument(
        "--data-dir",
        default="data",
        help="MNIST: folder of the IDX files whose test images the parity check runs on (default: data/)",
    )
    p.add_argument(
        "--data",
        help="keypoint tasks: training.csv whose validation faces the parity check runs on "
        "(default: the faces the checkpoint was trained on)",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from torchlab.export import export_checked

    report = export_checked(
        args.checkpoint, args.fmt, args.out, check=not args.no_check, data_dir=args.data_dir, data=args.data
    )
    meta = report.metadata
    print(f"wrote {report.path} ({report.fmt}, {report.path.stat().st_size / 1e6:.2f} MB)")
    print(f"model: {meta['model']}  input: ({', '.join(map(str, meta['input_shape']))})  output: raw model outputs")
    print(f"normalization (apply before feeding the model): {json.dumps(meta['normalization'])}")
    if report.max_difference is None:
        print("parity: not checked (--no-check)")
    else:
        print(
            f"parity: max |exported - checkpoint| = {report.max_difference:.2e} on {report.checked_inputs} inputs "
            f"from {report.inputs_source} (allowed {report.allowed_difference:.2e})"
        )
    return 0
