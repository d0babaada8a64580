"""Export a checkpoint for inference outside torchlab: ONNX (for onnxruntime), a torch.export program (pt2),
or TorchScript (deprecated upstream).

    path = export("checkpoints/digits/best.pt", fmt="onnx", out="digits.onnx")

The file maps `input`, a batch of any size of shape (batch, *input_shape), to the model's raw
`output` (logits or regression values, exactly what the nn.Module returns). The input is NOT
normalized inside the file: the checkpoint's normalization, together with task, model, classes
and input shape, is recorded as JSON strings in the file's metadata (ONNX `metadata_props`;
pt2 and TorchScript: the extra file `torchlab.json`); `read_metadata(path)` returns it as a dict.

A pt2 file is a `torch.export` ExportedProgram saved with `torch.export.save`; any process with torch
alone runs it: `torch.export.load("m.pt2").module()(x)` (the batch size is free).

With `check=True` the exported bytes are loaded back (onnxruntime / torch.export.load / torch.jit.load) and run on a
batch of the task's own inputs (digits and MNIST test images, validation faces, ring points, patch
pixels; MNIST needs its files in `data_dir`, keypoints read `data` or the faces they were trained
on), or on standard-normal inputs when the task's data cannot be read here; the export fails,
and nothing is written, unless every output is within `TOLERANCE × max(1, largest |checkpoint
output|)` of the checkpoint model's. The ONNX file comes
from PyTorch's torch.export-based exporter (`torch.onnx.export(dynamo=True)`), which needs the
optional extra `pip install torchlab[onnx]` (onnx, onnxscript and onnxruntime). pt2 and TorchScript
need nothing more; TorchScript is deprecated upstream (kept for old consumers): prefer pt2 or ONNX.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchlab.engine.checkpoint import load
from torchlab.errors import CheckpointError, ExportError, TorchlabError, UsageError
from torchlab.runtime.files import atomic_write_bytes
from torchlab.version import __version__

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt"}
TOLERANCE = 1e-4  # relative to max(1, largest |output|): float32 kernels differ in summation order
CHECK_BATCH = 8  # inputs in the parity check (the export itself traces a batch of 2: the batch size stays free)
META_KEYS = ("task", "recipe", "epoch", "normalization", "classes", "digits", "keypoint_names")
TORCHSCRIPT_META = "torchlab.json"  # the extra file holding the metadata in pt2 and TorchScript files
ONNX_HINT = "ONNX export needs onnx, onnxscript and onnxruntime: pip install torchlab[onnx]"


@dataclass(frozen=True)
class ExportReport:
    """What `export_checked` wrote and how close the exported outputs came to the checkpoint's."""

    path: Path
    fmt: str
    metadata: dict[str, Any]
    max_difference: float | None  # None when the check was skipped
    allowed_difference: float | None
    checked_inputs: int
    inputs_source: str = ""  # "task data" or "random (<why>)"


def export(
    checkpoint: str | os.PathLike,
    fmt: str = "onnx",
    out: str | os.PathLike | None = None,
    check: bool = True,
    inputs: torch.Tensor | None = None,
    data_dir: str = "data",
    data: str | None = None,
) -> Path:
    """Write `checkpoint`'s model as an ONNX, pt2 (torch.export) or TorchScript file and return its path.

    See the module docstring.

    out: the file to write (default: `<model name>.onnx` / `.pt2` / `.torchscript.pt` beside the checkpoint).
    inputs: the batch for the parity check (default: CHECK_BATCH of the task's own inputs, read from
    `data_dir` / `data` where the task needs files; standard-normal samples when they cannot be read).
    """
    return export_checked(checkpoint, fmt, out, check, inputs, data_dir, data).path


def export_checked(
    checkpoint: str | os.PathLike,
    fmt: str = "onnx",
    out: str | os.PathLike | None = None,
    check: bool = True,
    inputs: torch.Tensor | None = None,
    data_dir: str = "data",
    data: str | None = None,
) -> ExportReport:
    """`export`, returning the parity check's numbers as well."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx(check)
    model, meta = load(checkpoint, device="cpu")
    spec = _input_shape(meta, checkpoint)
    out = Path(out) if out is not None else Path(checkpoint).parent / f"{meta['model']['name']}{FORMATS[fmt]}"
    if out.is_dir():
        raise UsageError(
            f"--out {out} is a folder; give a file name such as {out / (meta['model']['name'] + FORMATS[fmt])}"
        )
    metadata = _metadata(meta, spec, Path(checkpoint))
    example = torch.randn(2, *spec, generator=torch.Generator().manual_seed(1))
    exported = {"onnx": _onnx_bytes, "pt2": _pt2_bytes, "torchscript": _torchscript_bytes}[fmt](
        model, example, metadata
    )
    difference = allowed = None
    source = "given"
    if check:
        if inputs is None:
            inputs, source = parity_inputs(meta, spec, data_dir, data)
        inputs = inputs.float()
        if tuple(inputs.shape[1:]) != tuple(spec):
            wanted = ", ".join(map(str, spec))
            raise UsageError(f"parity inputs have shape {tuple(inputs.shape)}; the model takes (batch, {wanted})")
        with torch.no_grad():
            expected = model(inputs).numpy()
        got = {"onnx": _run_onnx, "pt2": _run_pt2, "torchscript": _run_torchscript}[fmt](exported, inputs)
        difference = float(abs(got - expected).max()) if expected.size else 0.0
        allowed = TOLERANCE * max(1.0, float(abs(expected).max()) if expected.size else 1.0)
        if got.shape != expected.shape or not difference <= allowed:
            raise ExportError(
                f"the exported {fmt} model does not reproduce {checkpoint}: outputs of shape {got.shape} "
                f"differ by up to "
                f"{difference:.3g} (allowed {allowed:.3g}); nothing was written"
            )
    atomic_write_bytes(out, exported)
    return ExportReport(
        out,
        fmt,
        metadata,
        difference,
        allowed,
        0 if inputs is None or not check else len(inputs),
        source if check else "",
    )


def parity_inputs(
    meta: dict[str, Any], spec: tuple[int, ...], data_dir: str = "data", data: str | None = None
) -> tuple[torch.Tensor, str]:
    """(CHECK_BATCH inputs, where they came from): the task's own inputs when its data can be read here,
    else standard-normal samples (seed 0) with the reason."""
    from torchlab.tasks import get_task
    from torchlab.tasks.run import InferenceOptions

    try:
        make = get_task(meta["task"]).function("example_inputs")
    except KeyError:  # a checkpoint of a task this torchlab does not know
        make = None
    why = f"task {meta.get('task')!r} has no example inputs"
    if make is not None:
        try:
            inputs = make(meta, InferenceOptions(data_dir=data_dir, data=data), CHECK_BATCH)
            return inputs.reshape(len(inputs), *spec), "task data"  # e.g. faces (n, 1, 96, 96) for a (9216,) input
        except (TorchlabError, OSError) as exc:
            why = str(exc).split(";")[0]
    return torch.randn(CHECK_BATCH, *spec, generator=torch.Generator().manual_seed(0)), f"random ({why})"


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The torchlab metadata recorded in an exported .onnx, .pt2 or TorchScript file, values decoded from JSON."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} does not exist or is not a file; give an exported .onnx or TorchScript file")
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return {key: json.loads(value) for key, value in props.items()}
    extra = {TORCHSCRIPT_META: ""}
    if path.suffix == ".pt2":
        torch.export.load(str(path), extra_files=extra)
        return json.loads(extra[TORCHSCRIPT_META])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[TORCHSCRIPT_META])


# ---------------------------------------------------------------------------------- helpers
def _require_onnx(check: bool) -> None:
    needed = ["onnx", "onnxscript"] + (["onnxruntime"] if check else [])
    import importlib.util

    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"{ONNX_HINT} (missing: {', '.join(missing)})")


def _input_shape(meta: dict[str, Any], checkpoint: str | os.PathLike) -> tuple[int, ...]:
    from torchlab.models import get_model_spec

    shape = get_model_spec(meta["model"]["name"]).input_shape
    if shape is None:
        raise CheckpointError(
            f"{checkpoint}: model {meta['model']['name']} declares no input shape, so it cannot be exported"
        )
    return tuple(shape)


def _metadata(meta: dict[str, Any], input_shape: tuple[int, ...], checkpoint: Path) -> dict[str, Any]:
    out = {
        "model": meta["model"]["name"],
        "model_kwargs": meta["model"].get("kwargs", {}),
        "input_shape": ["batch", *input_shape],
        "output": "the model's raw outputs (logits or values), one row per input",
        "source": checkpoint.name,
        "torchlab_version": __version__,
    }
    out.update({key: meta[key] for key in META_KEYS if meta.get(key) is not None})
    if "normalization" not in out:
        out["normalization"] = None  # say so explicitly: the inputs go in as they are
    return json.loads(json.dumps(out, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)


def _onnx_bytes(model: nn.Module, example: torch.Tensor, metadata: dict[str, Any]) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many types; one line says which model failed
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ExportError(f"could not export {metadata['model']} to ONNX ({type(exc).__name__}: {first})") from None
    if program is None:  # only the legacy exporter (dynamo=False) returns None
        raise ExportError(f"could not export {metadata['model']} to ONNX (the exporter returned no program)")
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = f"torchlab {metadata['model']} exported from {metadata['source']}"
    return proto.SerializeToString()


def _pt2_bytes(model: nn.Module, example: torch.Tensor, metadata: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        except Exception as exc:  # the exporter raises many types; one line says which model failed
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ExportError(
                f"could not export {metadata['model']} with torch.export ({type(exc).__name__}: {first})"
            ) from None
        torch.export.save(program, buffer, extra_files={TORCHSCRIPT_META: json.dumps(metadata)})
    return buffer.getvalue()


def _run_pt2(data: bytes, inputs: torch.Tensor):
    module = torch.export.load(io.BytesIO(data)).module()
    with torch.no_grad():
        return module(inputs).numpy()


def _torchscript_bytes(model: nn.Module, example: torch.Tensor, metadata: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream; trace warnings name Python branches
        try:
            traced = torch.jit.trace(model, example, check_trace=False)  # the parity check below does better
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ExportError(
                f"could not trace {metadata['model']} to TorchScript ({type(exc).__name__}: {first})"
            ) from None
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_META: json.dumps(metadata)})
    return buffer.getvalue()


def _run_onnx(data: bytes, inputs: torch.Tensor):
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": inputs.numpy()})[0]


def _run_torchscript(data: bytes, inputs: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    with torch.no_grad():
        return module(inputs).numpy()
