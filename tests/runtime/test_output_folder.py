"""The output-folder rule: a run is never replaced silently, and two runs never share a folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import torchlab
from torchlab.cli.main import main
from torchlab.errors import UsageError
from torchlab.runtime.output_folder import LOCK_NAME, locked_output

FAST = ["--epochs", "1", "--device", "cpu", "--no-progress"]


def test_a_second_run_into_the_same_folder_is_refused_and_the_first_survives(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digit-mlp", *FAST, "--out", str(out)]) == 0
    before = (out / "best.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "digit-mlp", *FAST, "--lr", "0.5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err and "\n" not in err
    assert (out / "best.pt").read_bytes() == before


def test_overwrite_replaces_the_run_without_stale_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digit-mlp", *FAST, "--out", str(out)]) == 0
    assert (out / "figures" / "loss.png").exists()
    assert main(["train", "digit-mlp", *FAST, "--out", str(out), "--overwrite", "--no-figures", "--hidden", "8"]) == 0
    assert not (out / "figures").exists()  # the earlier run's figures do not pose as this run's
    _, meta = torchlab.load(out / "best.pt")
    assert meta["config"]["hidden"] == 8


def test_resume_and_overwrite_exclude_each_other(tmp_path):
    torchlab.train("digit-mlp", out=tmp_path, epochs=1, device="cpu", figures=False, progress=False)
    with pytest.raises(UsageError, match="--resume and --overwrite exclude each other"):
        torchlab.train("digit-mlp", out=tmp_path, epochs=2, device="cpu", resume=True, overwrite=True)


def test_a_failed_run_leaves_no_folder_and_no_lock(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(UsageError):
        with locked_output(out):
            assert (out / LOCK_NAME).exists()
            raise UsageError("the data was missing")
    assert not out.exists()


def test_a_second_process_cannot_write_into_a_locked_folder(tmp_path):
    out = tmp_path / "busy"
    holder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from torchlab.runtime.output_folder import locked_output
        with locked_output(Path({str(out)!r})):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match=rf"another torchlab run \(process {proc.pid}\) is writing to .*busy"):
            torchlab.train("digit-mlp", out=out, epochs=1, device="cpu", figures=False)
    finally:
        proc.communicate("\n", timeout=30)
    assert proc.returncode == 0
    assert not out.exists()  # the holder's folder was empty: gone with its lock


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    "out, words",
    [
        ("/proc", "--out /proc is a folder torchlab cannot create files in ("),
        ("/proc/run", "--out /proc/run cannot be created ("),
    ],
)
def test_an_unwritable_out_folder_is_named_not_its_lock_file(capsys, out, words):
    """Issue 40: `--out /proc` spoke of /proc/.torchlab.lock, a file the user never named."""
    assert main(["train", "digit-mlp", *FAST, "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "choose another --out" in err and LOCK_NAME not in err and "\n" not in err
