"""docs/guarantees.md, "The output-folder rule": one run per --out folder. A folder holding a run (best.pt, last.pt or
history.csv) is never overwritten without --overwrite (one line, exit 2, nothing touched); --overwrite
removes that run's files and only those; two runs never write into one folder; a failed run leaves no
folder. All in this process: the CLI's main(argv), the API and the lock."""

from __future__ import annotations

import os

import pytest

import torchlab
from torchlab.cli.main import main
from torchlab.errors import UsageError
from torchlab.runtime.output_folder import locked_output

FAST = ["--epochs", "1", "--device", "cpu", "--no-progress", "--no-figures"]


def cli(capsys, *argv):
    """Run `torchlab ARGV`; its exit status and what it printed on stderr."""
    capsys.readouterr()
    status = main(list(argv))
    return status, capsys.readouterr().err.strip()


@pytest.mark.parametrize("name", ["best.pt", "last.pt", "history.csv"])
def test_a_folder_holding_any_file_of_a_run_is_not_overwritten(tmp_path, capsys, name):
    (tmp_path / name).write_bytes(b"the earlier run")
    status, err = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(tmp_path))
    assert status == 2 and "\n" not in err
    assert f"{tmp_path} already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert (tmp_path / name).read_bytes() == b"the earlier run"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written, no lock left


def test_the_api_refuses_the_same(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(UsageError, match="already holds a run"):
        torchlab.train("digit-mlp", out=tmp_path, epochs=1, device="cpu", figures=False, progress=False)


def test_a_folder_of_other_files_takes_a_new_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    status, _ = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(tmp_path))
    assert status == 0 and (tmp_path / "best.pt").exists() and (tmp_path / "notes.txt").read_text() == "mine"


def test_overwrite_removes_the_earlier_runs_files_and_only_those(tmp_path, capsys):
    for name in ("best.pt", "last.pt", "history.csv"):
        (tmp_path / name).write_bytes(b"old")
    for folder in ("figures", "tensorboard"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "old.png").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    status, _ = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(tmp_path), "--overwrite")
    assert status == 0
    assert not (tmp_path / "figures").exists() and not (tmp_path / "tensorboard").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    for name in ("best.pt", "last.pt", "history.csv"):
        assert (tmp_path / name).read_bytes() != b"old"
    torchlab.load(tmp_path / "best.pt")


def test_out_that_is_a_file_is_refused_and_left_alone(tmp_path, capsys):
    target = tmp_path / "model.pt"
    target.write_bytes(b"not a folder")
    status, err = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(target))
    assert status == 2 and "\n" not in err and f"--out {target} is a file" in err
    assert target.read_bytes() == b"not a folder"


def test_resume_without_a_run_is_refused_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "empty"
    status, err = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(out), "--resume")
    assert status == 2 and "\n" not in err and f"{out / 'last.pt'} does not exist" in err
    assert not out.exists()


def test_resume_into_an_existing_folder_without_last_pt_names_the_missing_file(tmp_path, capsys):
    """The folder exists (it may hold the user's own files, or an earlier run's figures) but no last.pt:
    the one line says which file --resume needs, from the CLI and from the API, and nothing is written."""
    out = tmp_path / "started"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    expected = f"--resume was given but {out / 'last.pt'} does not exist; drop --resume or fix --out"
    status, err = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(out), "--resume")
    assert status == 2 and err == f"torchlab train: error: {expected}"
    with pytest.raises(UsageError) as refused:
        torchlab.train("digit-mlp", out=out, resume=True, epochs=1, device="cpu", figures=False, progress=False)
    assert str(refused.value) == expected
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # --resume auto starts the run there instead
    status, _ = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(out), "--resume", "auto")
    assert status == 0 and (out / "last.pt").exists() and (out / "notes.txt").read_text() == "mine"


def test_resume_and_overwrite_exclude_each_other(tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"old")
    status, err = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(tmp_path), "--resume", "--overwrite")
    assert status == 2 and "--resume and --overwrite exclude each other" in err
    assert (tmp_path / "last.pt").read_bytes() == b"old"


def test_a_second_run_into_a_folder_another_run_holds_fails_at_once_naming_it(tmp_path, capsys):
    out = tmp_path / "busy"
    with locked_output(out):  # the other run, still training
        status, err = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(out))
        assert status == 2 and "\n" not in err
        assert f"another torchlab run (process {os.getpid()}) is writing to {out}" in err
        assert not (out / "best.pt").exists()
    status, _ = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(out))  # free again once it ends
    assert status == 0


def test_a_run_holds_its_folder_only_while_it_trains(tmp_path):
    """The lock is <out>/.torchlab.lock, a hidden file naming the process that holds it (output_folder.py)."""
    out = tmp_path / "run"
    with locked_output(out):
        assert (out / ".torchlab.lock").read_text().strip() == str(os.getpid())
    assert not out.exists()  # left empty: removed again
    torchlab.train("digit-mlp", out=out, epochs=1, device="cpu", figures=False, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.toml", "history.csv", "last.pt"]  # no lock


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(UsageError), locked_output(out):
        raise UsageError("the data was missing")
    assert not out.exists()


def test_a_failure_leaves_a_folder_that_existed(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    with pytest.raises(UsageError), locked_output(out):
        raise UsageError("the data was missing")
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_new_run_creates_the_folders_of_a_nested_out_and_writes_its_figures_there(tmp_path):
    """torchlab.train's docstring: best.pt, last.pt, history.csv and figures under `out`.

    Figures unless told not to.
    """
    out = tmp_path / "runs" / "digits" / "seed0"
    result = torchlab.train("digit-mlp", out=out, epochs=1, device="cpu", progress=False)
    assert result.best_checkpoint == out / "best.pt" and (out / "best.pt").exists()
    assert out / "figures" / "loss.png" in result.figures and (out / "figures" / "loss.png").exists()


def test_overwrite_takes_a_folder_holding_only_part_of_a_run(tmp_path, capsys):
    """A run stopped before its first checkpoint left history.csv alone (no best.pt, last.pt or figures/)."""
    (tmp_path / "history.csv").write_text("epoch,train_loss\n")
    status, err = cli(capsys, "train", "digit-mlp", *FAST, "--out", str(tmp_path), "--overwrite")
    assert status == 0, err
    torchlab.load(tmp_path / "best.pt")
