"""Safe loading: a checkpoint crafted to run code when unpickled is refused with a CheckpointError
and its payload never runs; no code path loads with weights_only=False or plain pickle."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch

import torchlab
from conftest import ROOT
from torchlab.cli.main import main
from torchlab.engine.checkpoint import FORMAT, read_checkpoint
from torchlab.errors import CheckpointError


class Payload:
    """Unpickling this calls os.mkdir(marker): the stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def crafted(marker: Path) -> dict:
    """A dict that looks like a torchlab checkpoint, with the payload hidden in its metadata."""
    return {
        "format": FORMAT,
        "format_version": 1,
        "task": "digit-mlp",
        "model": {"name": "digit-mlp", "kwargs": {}},
        "state_dict": {},
        "notes": Payload(marker),
    }


def write_variants(folder: Path, marker: Path) -> dict[str, Path]:
    files = {"zip": folder / "zip.pt", "legacy": folder / "legacy.pt", "pickle": folder / "raw.pt"}
    torch.save(crafted(marker), files["zip"])
    torch.save(crafted(marker), files["legacy"], _use_new_zipfile_serialization=False)
    files["pickle"].write_bytes(pickle.dumps(crafted(marker)))
    return files


def test_the_payload_is_live(tmp_path):
    """Proof that the crafted bytes do run code when unpickled naively (so the refusal below matters)."""
    marker = tmp_path / "ran"
    files = write_variants(tmp_path, marker)
    pickle.loads(files["pickle"].read_bytes())
    assert marker.is_dir()
    os.rmdir(marker)
    with zipfile.ZipFile(files["zip"]) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        pickle.loads(archive.read(name))
    assert marker.is_dir()


@pytest.mark.parametrize("variant", ["zip", "legacy", "pickle"])
def test_crafted_checkpoint_is_refused_and_payload_never_runs(tmp_path, variant):
    marker = tmp_path / "ran"
    path = write_variants(tmp_path, marker)[variant]
    with pytest.raises(CheckpointError, match="refused|not a readable checkpoint") as info:
        torchlab.load(path)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("command, variant", [(["evaluate"], "zip"), (["predict", "--index", "0"], "pickle")])
def test_cli_refuses_crafted_checkpoint_in_one_line(tmp_path, capsys, command, variant):
    marker = tmp_path / "ran"
    path = write_variants(tmp_path, marker)[variant]
    argv = [command[0], str(path), *command[1:], "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "Traceback" not in err
    assert not marker.exists()


def test_resume_refuses_crafted_last_pt(tmp_path, capsys):
    marker = tmp_path / "ran"
    out = tmp_path / "run"
    out.mkdir()
    torch.save(crafted(marker), out / "last.pt")
    status = main(
        [
            "train",
            "digit-mlp",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--resume",
            "--no-figures",
            "--no-progress",
        ]
    )
    assert status == 2 and "refused" in capsys.readouterr().err
    assert not marker.exists()


def test_no_code_path_loads_unsafely():
    """Every torch.load in the package and scripts passes weights_only=True; no pickle/allow_pickle loads."""
    sources = (
        sorted((ROOT / "torchlab").rglob("*.py"))
        + sorted((ROOT / "scripts").glob("*.py"))
        + sorted((ROOT / "tools").glob("*.py"))
    )
    assert len(sources) > 10
    offenders = []
    for path in sources:
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start() : text.find(")", match.start()) + 1]
            if "weights_only=True" not in call:
                offenders.append(f"{path.relative_to(ROOT)}: {call}")
        for pattern in (
            r"weights_only\s*=\s*False",
            r"pickle\.loads?\(",
            r"allow_pickle\s*=\s*True",
            r"dill\.|joblib\.load",
        ):
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert not offenders, offenders
