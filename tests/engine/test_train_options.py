"""The Trainer's options as a user reaches them: config fields of every task, so `torchlab.train(...)`
keywords and `torchlab train TASK` flags (listed in --help with their defaults): the early-stopping
rules, the time budget, gradient accumulation and the dry run, end to end on digit-mlp."""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

import pytest
import torch

import torchlab
from torchlab.cli.main import main
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.engine.dry_run import DryRunReport

RUN = {"device": "cpu", "progress": False, "figures": False}
FLAGS = ["--device", "cpu", "--no-progress", "--no-figures"]


def help_entries(task: str = "digit-mlp") -> list[str]:
    """`torchlab train TASK --help`, one entry per option (flag and help text on one line)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main(["train", task, "--help"])
    assert done.value.code == 0
    return [" ".join(entry.split()) for entry in re.split(r"\n  (?=-)", out.getvalue())]


def test_help_lists_every_option_with_its_default():
    entries = help_entries()
    for flag, default in [
        ("--baseline BASELINE", "none"),
        ("--start-from-epoch START_FROM_EPOCH", "0"),
        ("--stopping-threshold STOPPING_THRESHOLD", "none"),
        ("--divergence-threshold DIVERGENCE_THRESHOLD", "none"),
        ("--check-finite, --no-check-finite", "True"),
        ("--max-time TIME", "none"),
        ("--accumulate N", "1"),
    ]:
        entry = next(e for e in entries if e.startswith(f"{flag} "))
        assert entry.endswith(f"(default: {default})"), entry
    assert any(e.startswith("--dry-run train one batch and validate one batch of the real data") for e in entries)
    assert any("(Keras baseline;" in e for e in entries) and any("(Lightning check_finite)" in e for e in entries)


def test_bad_values_are_one_line_errors_before_anything_runs(tmp_path, capsys):
    for flag, value in [("--max-time", "soon"), ("--accumulate", "0"), ("--start-from-epoch", "-2")]:
        assert main(["train", "digit-mlp", *FLAGS, "--out", str(tmp_path / "x"), flag, value]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"torchlab train: error: {flag} must be ") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_a_dry_run_from_python_and_the_cli_writes_nothing(tmp_path, capsys):
    scratch = set(Path(tempfile.gettempdir()).glob("torchlab-dry-run-*"))
    report = torchlab.train("digit-mlp", "adamw-20", out=tmp_path / "new", dry_run=True, accumulate=2, **RUN)
    assert isinstance(report, DryRunReport) and report.parameters == report.trainable == 2410
    assert report.inputs[0] == ([64, 64], "float32") and report.output == [64, 10] and report.accumulate == 2
    assert report.val is not None and report.train["train_loss"] > 0
    assert not (tmp_path / "new").exists()
    # a folder that holds a run: no refusal, not a byte changed
    torchlab.train("digit-mlp", out=tmp_path / "run", epochs=1, **RUN)
    files = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    assert (
        main(
            [
                "train",
                "digit-mlp",
                *FLAGS,
                "--recipe",
                "adamw-20",
                "--out",
                str(tmp_path / "run"),
                "--dry-run",
                "--epochs",
                "7",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "dry run on cpu: one training step and one validation batch, nothing written"
    assert "parameters: 2,410 (2,410 trainable)" in out
    assert "training batch: inputs (64, 64) float32, targets (64,) int64 -> output (64, 10)" in out
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files
    # --resume --dry-run: the step starts from last.pt, which is only read
    assert (
        main(["train", "digit-mlp", *FLAGS, "--out", str(tmp_path / "run"), "--dry-run", "--resume", "--epochs", "3"])
        == 0
    )
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files
    assert set(Path(tempfile.gettempdir()).glob("torchlab-dry-run-*")) == scratch


def test_stopping_rules_reach_every_task_and_the_summary_says_why(tmp_path):
    result = torchlab.train("digit-mlp", out=tmp_path / "a", epochs=6, stopping_threshold=10.0, **RUN)
    assert result.summary["epochs"] == 1  # val_loss is below 10 after the first epoch
    assert result.summary["stopped"].startswith("early stopping at epoch 1: val_loss = ")
    assert "reached the stopping threshold (below 10" in result.summary["stopped"]
    last = read_checkpoint(tmp_path / "a" / "last.pt")
    assert last["early_stopping"]["stop_reason"] == "stopping_threshold" and last["config"]["stopping_threshold"] == 10
    result = torchlab.train("digit-mlp", out=tmp_path / "b", epochs=4, divergence_threshold=0.1, **RUN)
    assert result.summary["epochs"] == 1 and "passed the divergence threshold" in result.summary["stopped"]
    result = torchlab.train(
        "digit-mlp", out=tmp_path / "c", epochs=5, patience=1, baseline=0.01, start_from_epoch=2, **RUN
    )  # no val_loss beats 0.01: the first epoch after the warm-up
    assert result.summary["epochs"] == 3 and "has not beaten the baseline 0.01" in result.summary["stopped"]
    assert "stopped" not in torchlab.train("digit-mlp", out=tmp_path / "d", epochs=1, **RUN).summary


def test_accumulate_takes_one_optimizer_step_per_n_batches(tmp_path):
    steps = {}
    for accumulate in (1, 3):
        torchlab.train("digit-mlp", out=tmp_path / str(accumulate), epochs=1, accumulate=accumulate, **RUN)
        state = read_checkpoint(tmp_path / str(accumulate) / "last.pt")["optimizer"]["state"]
        steps[accumulate] = int(state[0]["step"])
    assert steps[3] == -(-steps[1] // 3) and steps[1] > 3  # AdamW's step count; the one-cycle schedule ran to its end


def test_a_time_budget_from_the_cli_stops_saves_and_resumes_like_an_uninterrupted_run(tmp_path, capsys):
    torchlab.train("digit-mlp", out=tmp_path / "straight", epochs=2, **RUN)
    # one microsecond: the budget is spent at the first optimizer step
    assert (
        main(["train", "digit-mlp", *FLAGS, "--out", str(tmp_path / "b"), "--epochs", "2", "--max-time", "0.000001s"])
        == 0
    )
    out = capsys.readouterr().out
    assert "stopped: time budget of 1e-06s used up in epoch 1 of 2, after 1 of " in out
    last = read_checkpoint(tmp_path / "b" / "last.pt")
    assert last["epoch"] == 0 and last["interrupted"]["batches"] == 1 and last["config"]["max_time"] == "0.000001s"
    # resumed with a budget of a day (max_time may change on resume)
    assert (
        main(
            [
                "train",
                "digit-mlp",
                *FLAGS,
                "--out",
                str(tmp_path / "b"),
                "--epochs",
                "2",
                "--resume",
                "--max-time",
                "24h",
            ]
        )
        == 0
    )
    assert "stopped" not in capsys.readouterr().out
    for name in ("last.pt", "best.pt"):
        a, b = read_checkpoint(tmp_path / "straight" / name), read_checkpoint(tmp_path / "b" / name)
        assert a["epoch"] == b["epoch"] and all(
            torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]
        ), name
