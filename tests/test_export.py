"""Export: every registered model to ONNX, pt2 (torch.export) and TorchScript, free batch size, metadata, parity
with the checkpoint."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from torchlab.engine.checkpoint import make_checkpoint, save_checkpoint
from torchlab.errors import ExportError, UsageError
from torchlab.export import TOLERANCE, export, read_metadata
from torchlab.models import build_model, get_model_spec, model_names

ONNX_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_onnx = pytest.mark.skipif(bool(ONNX_MISSING), reason=f"optional torchlab[onnx] packages absent: {ONNX_MISSING}")
NORMALIZATION = {"mean": 0.1307, "std": 0.3081, "input": "pixels / 255"}


def write_checkpoint(name, folder):
    torch.manual_seed(0)
    model = build_model(name)
    checkpoint = make_checkpoint(
        task="test-task",
        model_name=name,
        model=model,
        model_kwargs={},
        epoch=3,
        normalization=NORMALIZATION,
        classes=["a", "b"],
    )
    return save_checkpoint(checkpoint, folder / "best.pt"), model.eval()


def batch(name, n, seed):
    return torch.randn(n, *get_model_spec(name).input_shape, generator=torch.Generator().manual_seed(seed))


def run_onnx(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def run_torchscript(path, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path))(x).detach().numpy()


def run_pt2(path, x):
    with torch.no_grad():
        return torch.export.load(str(path)).module()(x).numpy()


RUNNERS = {"onnx": run_onnx, "pt2": run_pt2, "torchscript": run_torchscript}


def assert_close(got, model, x):
    with torch.no_grad():
        expected = model(x).numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])  # pt2: below (ONNX already goes through torch.export)
@pytest.mark.parametrize("name", model_names())
def test_every_model_exports_with_free_batch_size_metadata_and_parity(name, fmt, tmp_path):
    if fmt == "onnx" and ONNX_MISSING:
        pytest.skip(f"optional torchlab[onnx] packages absent: {ONNX_MISSING}")
    ckpt, model = write_checkpoint(name, tmp_path)
    out = export(ckpt, fmt=fmt, out=tmp_path / f"model.{fmt}", check=True, inputs=batch(name, 3, seed=0))
    assert out == tmp_path / f"model.{fmt}" and out.stat().st_size > 0
    meta = _onnx_meta(out) if fmt == "onnx" else read_metadata(out)
    assert meta["normalization"] == NORMALIZATION
    assert meta["model"] == name and meta["task"] == "test-task" and meta["classes"] == ["a", "b"]
    assert meta["input_shape"] == ["batch", *get_model_spec(name).input_shape]
    run = RUNNERS[fmt]
    for n in (1, 3):  # neither is the batch size the export traced with (2)
        assert_close(run(out, batch(name, n, seed=n)), model, batch(name, n, seed=n))


def _onnx_meta(path):
    """The metadata as a plain onnxruntime user reads it (the recipe in docs/export.md).

    Checked against read_metadata.
    """
    import json

    import onnxruntime as ort

    props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    meta = {key: json.loads(value) for key, value in props.items()}
    assert meta == read_metadata(path)
    return meta


@needs_onnx
def test_onnx_batch_dimension_is_symbolic(tmp_path):
    import onnx

    ckpt, _ = write_checkpoint("mnist-cnn", tmp_path)
    graph = onnx.load(str(export(ckpt, "onnx", tmp_path / "m.onnx"))).graph
    first = [graph.input[0].type.tensor_type.shape.dim[0], graph.output[0].type.tensor_type.shape.dim[0]]
    assert all(d.dim_param and not d.dim_value for d in first)


def test_digit_mlp_parity_on_real_digits(tmp_path):
    from sklearn.datasets import load_digits

    ckpt, model = write_checkpoint("digit-mlp", tmp_path)
    digits = torch.tensor(load_digits().data[:64], dtype=torch.float32) / 16.0
    out = export(ckpt, "torchscript", tmp_path / "d.pt", inputs=digits)
    assert_close(run_torchscript(out, digits), model, digits)


def test_failed_parity_check_writes_nothing(tmp_path, monkeypatch):
    import torchlab.export as export_module

    ckpt, _ = write_checkpoint("ring-mlp", tmp_path)
    real = export_module._run_torchscript
    monkeypatch.setattr(export_module, "_run_torchscript", lambda data, x: real(data, x) + 0.01)
    with pytest.raises(ExportError, match="nothing was written"):
        export(ckpt, "torchscript", tmp_path / "r.pt")
    assert not (tmp_path / "r.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_user_errors_are_one_line(tmp_path, monkeypatch):
    ckpt, _ = write_checkpoint("ring-net", tmp_path)
    with pytest.raises(UsageError, match="unknown export format 'tflite'"):
        export(ckpt, "tflite")
    with pytest.raises(UsageError, match="is a folder"):
        export(ckpt, "torchscript", out=tmp_path)
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the optional extra were not installed
    with pytest.raises(UsageError, match=r"pip install torchlab\[onnx\]"):
        export(ckpt, "onnx", out=tmp_path / "r.onnx")
    assert not (tmp_path / "r.onnx").exists()


def test_cli_export_prints_the_parity_and_normalization(tmp_path, capsys):
    from torchlab.cli.main import main

    ckpt, model = write_checkpoint("mnist-tiny-cnn", tmp_path)
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "t.pt")]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 't.pt'}" in printed
    assert '"mean": 0.1307' in printed and "parity: max |exported - checkpoint|" in printed
    x = batch("mnist-tiny-cnn", 3, seed=9)
    assert_close(run_torchscript(tmp_path / "t.pt", x), model, x)
    assert main(["export", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_torchscript_metadata_reads_back_from_bytes(tmp_path):
    ckpt, _ = write_checkpoint("patch-linear", tmp_path)
    out = export(ckpt, "torchscript", tmp_path / "p.pt")
    extra = {"torchlab.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(io.BytesIO(out.read_bytes()), _extra_files=extra)
    assert b'"normalization": {"mean": 0.1307' in extra["torchlab.json"]


@needs_onnx
def test_the_docs_onnxruntime_recipe_runs_on_an_exported_digit_mlp(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    from torchlab.cli.main import main

    section = (
        (Path(__file__).resolve().parents[1] / "docs" / "export.md")
        .read_text(encoding="utf-8")
        .split("# Export for inference outside torchlab")[1]
    )
    recipe = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "import torch" not in recipe and "torchlab" not in recipe
    monkeypatch.chdir(tmp_path)
    assert main(["train", "digit-mlp", "--out", "run", "--no-figures", "--no-progress", "--epochs", "5"]) == 0
    assert main(["export", "run/best.pt", "--format", "onnx", "--out", "digit-mlp.onnx"]) == 0
    capsys.readouterr()
    exec(compile(recipe, "docs/export.md", "exec"), {})
    predicted, true = capsys.readouterr().out.strip().split("] [")
    agree = sum(a == b for a, b in zip(predicted.strip("[").split(", "), true.strip("]").split(", ")))
    assert agree >= 7  # a 5-epoch digit MLP gets at least 7 of the first 8 digits right


TASK_RUNS = {  # task -> settings of a tiny run whose checkpoint the export check reads data for
    "digit-mlp": {"epochs": 1},
    "ring-mlp": {"epochs": 3},
    "patch-linear": {"epochs": 3, "ramp": True},
    "keypoint-fcn": {"epochs": 1, "synthetic": 300, "batch_size": 32},
    "mnist": {"epochs": 1, "limit": 120, "val_size": 0, "batch_size": 32},
}


@pytest.mark.parametrize("task", sorted(TASK_RUNS))
def test_parity_runs_on_the_tasks_own_inputs(task, tmp_path):
    """The default parity batch is the task's data (test digits, validation faces, ring points, ...), not noise."""
    import torchlab
    from accelerators import write_fake_mnist
    from torchlab.export import CHECK_BATCH, export_checked, parity_inputs

    settings = dict(TASK_RUNS[task])
    data_dir = "data"
    if task == "mnist":
        data_dir = str(write_fake_mnist(tmp_path / "mnist", n_train=120, n_test=40))
        settings["data_dir"] = data_dir
    result = torchlab.train(task, out=tmp_path / "run", device="cpu", figures=False, progress=False, **settings)
    report = export_checked(result.best_checkpoint, "torchscript", tmp_path / "m.pt", data_dir=data_dir)
    assert report.inputs_source == "task data" and report.checked_inputs == CHECK_BATCH
    assert report.max_difference <= report.allowed_difference
    if task == "digit-mlp":  # exactly the first test digits, in the model's input shape
        from torchlab.data.digits import load_digits_split

        _, meta = torchlab.load(result.best_checkpoint, device="cpu")
        inputs, _ = parity_inputs(meta, tuple(report.metadata["input_shape"][1:]), data_dir)
        assert torch.equal(inputs, load_digits_split().x_test[:CHECK_BATCH])
    if task == "mnist":  # without its files the check falls back to noise, and says why
        missing = export_checked(
            result.best_checkpoint, "torchscript", tmp_path / "m2.pt", data_dir=str(tmp_path / "nowhere")
        )
        assert missing.inputs_source.startswith("random (") and missing.max_difference <= missing.allowed_difference


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_flip_averaged_keypoint_net_exports_both_passes(fmt, tmp_path):
    if fmt == "onnx" and ONNX_MISSING:
        pytest.skip(f"optional torchlab[onnx] packages absent: {ONNX_MISSING}")
    torch.manual_seed(0)
    model = build_model("keypoint-net", width=8, flip_average=True)
    checkpoint = make_checkpoint(
        task="keypoint-net",
        model_name="keypoint-net",
        model=model,
        model_kwargs={"width": 8, "flip_average": True},
        epoch=1,
        normalization=NORMALIZATION,
    )
    ckpt = save_checkpoint(checkpoint, tmp_path / "best.pt")
    x = batch("keypoint-net", 2, seed=0)
    out = export(ckpt, fmt=fmt, out=tmp_path / f"model.{fmt}", check=True, inputs=x)
    run = run_onnx if fmt == "onnx" else run_torchscript
    y = batch("keypoint-net", 3, seed=3)
    assert_close(run(out, y), model.eval(), y)
    model.flip_average = False  # the file holds the average, not one pass
    with torch.no_grad():
        assert np.abs(run(out, y) - model(y).numpy()).max() > 1e-3


@pytest.mark.parametrize("head", ["heatmap-48", "regression"])
def test_the_other_keypoint_heads_export_with_parity(head, tmp_path):
    fmt = "torchscript" if ONNX_MISSING else "onnx"
    torch.manual_seed(0)
    model = build_model("keypoint-net", width=8, head=head, flip_sum=97.0)
    checkpoint = make_checkpoint(
        task="keypoint-net",
        model_name="keypoint-net",
        model=model,
        model_kwargs={"width": 8, "head": head, "flip_sum": 97.0},
        epoch=1,
        normalization=NORMALIZATION,
    )
    ckpt = save_checkpoint(checkpoint, tmp_path / "best.pt")
    out = export(ckpt, fmt=fmt, out=tmp_path / f"model.{fmt}", check=True, inputs=batch("keypoint-net", 2, seed=0))
    y = batch("keypoint-net", 3, seed=3)
    assert_close((run_onnx if fmt == "onnx" else run_torchscript)(out, y), model.eval(), y)


PT2_USER = """
import json, sys, torch
extra = {"torchlab.json": ""}
program = torch.export.load(sys.argv[1], extra_files=extra)
x = torch.tensor(json.loads(sys.argv[2]))
print(json.dumps({"out": program.module()(x).tolist(), "meta": json.loads(extra["torchlab.json"]),
                  "torchlab": any(name.startswith("torchlab") for name in sys.modules)}))
"""


def test_a_pt2_export_loads_with_torch_alone_with_its_metadata_and_parity(tmp_path, capsys):
    """The recipe in docs/export.md: torch.export.load(FILE).module() in a process that never imports torchlab."""
    from torchlab.cli.main import main

    ckpt, model = write_checkpoint("digit-mlp", tmp_path)
    out = tmp_path / "digits.pt2"
    assert main(["export", str(ckpt), "--format", "pt2", "--out", str(out)]) == 0
    assert "parity: max |exported - checkpoint|" in capsys.readouterr().out
    x = batch("digit-mlp", 5, seed=5)  # neither the traced batch size (2) nor the checked one (8)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # torch alone: torchlab is never imported
    proc = subprocess.run(
        [sys.executable, "-c", PT2_USER, str(out), json.dumps(x.tolist())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert_close(np.array(answer["out"], dtype=np.float32), model, x)
    assert answer["torchlab"] is False
    assert answer["meta"] == read_metadata(out)
    assert answer["meta"]["normalization"] == NORMALIZATION and answer["meta"]["task"] == "test-task"
    assert answer["meta"]["input_shape"] == ["batch", 64] and answer["meta"]["epoch"] == 3


@pytest.mark.parametrize("name", ["mnist-tiny-cnn", "keypoint-fcn"])
def test_conv_and_keypoint_models_export_to_pt2_with_a_free_batch_size(name, tmp_path):
    ckpt, model = write_checkpoint(name, tmp_path)
    out = export(ckpt, "pt2", tmp_path / "m.pt2", inputs=batch(name, 3, seed=0))
    assert read_metadata(out)["model"] == name
    for n in (1, 4):
        assert_close(run_pt2(out, batch(name, n, seed=n)), model, batch(name, n, seed=n))


def test_a_pt2_export_whose_outputs_differ_writes_nothing(tmp_path, monkeypatch):
    import torchlab.export as export_module

    ckpt, _ = write_checkpoint("digit-mlp", tmp_path)
    real = export_module._run_pt2
    monkeypatch.setattr(export_module, "_run_pt2", lambda data, x: real(data, x) + 0.01)
    with pytest.raises(ExportError, match="nothing was written"):
        export(ckpt, "pt2", tmp_path / "d.pt2")
    assert not (tmp_path / "d.pt2").exists()
