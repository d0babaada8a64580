"""Elastic restarts: under `torchrun --max-restarts=1`, a worker SIGKILLed part-way through an epoch is
restarted (with every other worker, and the same command line) and the run goes on from its last.pt, ending
with the weights, best.pt and history.csv of a run that was never interrupted. A first start into a folder
that holds a run is still refused; `--resume auto` resumes when last.pt exists; `--checkpoint-every N`
bounds what a crash loses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import torchlab
from conftest import DIGITS_TWO_RANKS
from elastic_worker import assert_same_run, epochs_trained, finish, launch
from torchlab.cli.main import main
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.runtime.device import one_cpu_thread
from torchlab.runtime.output_folder import RESTART_VARIABLE

FAST = ["train", "digit-mlp", "--device", "cpu", "--epochs", "2", "--no-figures", "--no-progress"]


@pytest.fixture(scope="module")
def restarted(tmp_path_factory):
    """Two ranks under torchrun --max-restarts=1; rank 1 SIGKILLs itself after 3 batches of epoch 2."""
    out = tmp_path_factory.mktemp("elastic")
    log = out / "torchrun"
    proc = launch(
        ["--standalone", "--nproc-per-node=2", "--max-restarts=1"],
        out,
        "worker:1:2:3",
        [*DIGITS_TWO_RANKS, "--batch-size", "32", "--out", str(out / "run")],
        log,
    )
    status = finish(proc, 180)
    return out, status, Path(f"{log}.out").read_text(), Path(f"{log}.err").read_text()


def test_a_worker_killed_mid_epoch_is_restarted_and_the_run_ends_as_if_never_interrupted(restarted, ddp_run):
    out, status, stdout, stderr = restarted
    assert status == 0, stderr[-3000:]
    assert "exitcode: -9" in stderr  # the kill happened, and torchrun saw it
    # the first start trained epoch 1 and began epoch 2; the restart went on from last.pt (epoch 1) in epoch 2
    assert [epochs_trained(out, 0, rank) for rank in (0, 1)] == [[1, 2], [1, 2]]
    assert [epochs_trained(out, 1, rank) for rank in (0, 1)] == [[2, 3], [2, 3]]
    assert "torchrun restarted this run's workers (restart 1): going on from" in stderr
    assert stdout.count("test_accuracy:") == 1  # rank 0 of the restart alone prints the summary
    reference, _ = ddp_run
    assert_same_run(out / "run", reference / "digits")


def train_here(*args: str) -> int:
    """The CLI in this process, one thread (the arithmetic of every run the checks compare)."""
    with one_cpu_thread(torch.device("cpu")):
        return main([*FAST, *args])


class Crash(Exception):
    """Ends a run after its first epoch (and its last.pt) as a killed process would."""


def crash_after_first_epoch(out) -> None:
    def crash(trainer, row):
        raise Crash

    with one_cpu_thread(torch.device("cpu")), pytest.raises(Crash):
        torchlab.train("digit-mlp", out=out, device="cpu", epochs=2, progress=False, figures=False, callbacks=[crash])
    assert read_checkpoint(out / "last.pt")["epoch"] == 1


def test_a_restarted_worker_resumes_where_a_first_start_is_refused(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    crash_after_first_epoch(run)
    # a first start (no restart count, or 0) into the folder is refused, as a command re-run by mistake is
    for count in (None, "0"):
        if count is not None:
            monkeypatch.setenv(RESTART_VARIABLE, count)
        assert train_here("--out", str(run)) == 2
        assert "already holds a run" in capsys.readouterr().err
    # the same command line, started again by torchrun's agent: it goes on from last.pt (and --overwrite,
    # which the first start carried out, does not remove the run the restart continues)
    monkeypatch.setenv(RESTART_VARIABLE, "1")
    assert train_here("--out", str(run), "--overwrite") == 0
    assert f"going on from {run / 'last.pt'}" in capsys.readouterr().err
    # a restart before the first checkpoint was written starts the run
    monkeypatch.setenv(RESTART_VARIABLE, "2")
    assert train_here("--out", str(tmp_path / "early")) == 0
    assert "going on from" not in capsys.readouterr().err
    assert_same_run(run, tmp_path / "early")  # the crashed and restarted run ends as the uninterrupted one


def test_resume_auto_starts_an_empty_folder_and_continues_a_run(tmp_path, capsys):
    assert train_here("--out", str(tmp_path / "whole"), "--resume", "auto") == 0  # nothing there: a start
    assert read_checkpoint(tmp_path / "whole" / "last.pt")["epoch"] == 2
    crash_after_first_epoch(tmp_path / "run")
    assert train_here("--out", str(tmp_path / "run"), "--resume", "auto") == 0  # last.pt there: a resume
    assert_same_run(tmp_path / "run", tmp_path / "whole")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([*FAST, "--out", str(tmp_path / "run"), "--resume", "maybe"])
    assert exit_.value.code == 2
    assert "argument --resume: expected no value or 'auto' (resume when last.pt exists), got 'maybe'" in (
        capsys.readouterr().err
    )
    # the API's resume="auto" is the same
    crash_after_first_epoch(tmp_path / "api")
    with one_cpu_thread(torch.device("cpu")):
        result = torchlab.train(
            "digit-mlp", out=tmp_path / "api", device="cpu", epochs=2, resume="auto", progress=False, figures=False
        )
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert_same_run(tmp_path / "api", tmp_path / "whole")
    with pytest.raises(torchlab.UsageError, match="--resume takes no value or 'auto'"):
        torchlab.train("digit-mlp", out=tmp_path / "api", device="cpu", resume="yes")


def test_checkpoint_every_bounds_what_a_crash_loses(tmp_path, capsys):
    seen: list[int | None] = []

    def last_epoch_on_disk(trainer, row):
        path = tmp_path / "every" / "last.pt"
        seen.append(read_checkpoint(path)["epoch"] if path.exists() else None)

    torchlab.train(
        "digit-mlp",
        out=tmp_path / "every",
        device="cpu",
        epochs=5,
        checkpoint_every=2,
        progress=False,
        figures=False,
        callbacks=[last_epoch_on_disk],
    )
    assert seen == [None, 2, 2, 4, 5]  # every 2nd epoch and the last
    assert main([*FAST, "--out", str(tmp_path / "flag"), "--epochs", "3", "--checkpoint-every", "3"]) == 0
    assert read_checkpoint(tmp_path / "flag" / "last.pt")["epoch"] == 3
    capsys.readouterr()
    assert main([*FAST, "--out", str(tmp_path / "zero"), "--checkpoint-every", "0"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint-every must be a whole number of epochs >= 1" in err and "\n" not in err.strip()
    assert not (tmp_path / "zero").exists()
