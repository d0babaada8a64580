"""docs/guarantees.md, "What torchlab guarantees": a file that is not a checkpoint torchlab can read (foreign, from a
newer format, incomplete, with NaN or infinite weights) is refused with one line, on the API and the CLI."""

from __future__ import annotations

import shutil

import pytest
import torch

import torchlab
from torchlab.cli.main import main
from torchlab.engine.checkpoint import save_checkpoint
from torchlab.errors import CheckpointError


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """best.pt of a one-epoch digit-mlp run, as this torchlab writes it."""
    out = tmp_path_factory.mktemp("promises-checkpoint") / "run"
    torchlab.train("digit-mlp", out=out, epochs=1, device="cpu", figures=False, progress=False)
    return out / "best.pt"


def edited(written, tmp_path, **changes):
    """A copy of the written checkpoint with some keys changed (None: the key removed)."""
    checkpoint = torch.load(written, weights_only=True)
    for key, value in changes.items():
        if value is None:
            checkpoint.pop(key)
        else:
            checkpoint[key] = value
    path = tmp_path / "edited.pt"
    save_checkpoint(checkpoint, path)  # written as torchlab writes: its digest fits the edited contents
    return path


def one_line_error(capsys, argv):
    """Run the CLI; its exit status and the one line it printed on stderr (asserting there is one)."""
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return status, err


def test_a_checkpoint_of_this_torchlab_opens_and_evaluates(written, capsys):
    model, meta = torchlab.load(written)
    assert meta["task"] == "digits" and meta["path"] == str(written)  # trained as digit-mlp, an alias
    assert main(["evaluate", str(written)]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_a_checkpoint_as_written_on_disk_so_far_opens(written, tmp_path):
    """Every torchlab checkpoint on disk carries the marker "torchlab-checkpoint" and format_version 1:
    this torchlab keeps reading them."""
    torchlab.load(edited(written, tmp_path, format="torchlab-checkpoint", format_version=1))


def test_a_checkpoint_from_a_newer_format_is_refused_with_one_line(written, tmp_path, capsys):
    path = edited(written, tmp_path, format_version=2)
    with pytest.raises(CheckpointError, match=r"newer torchlab \(format 2\); upgrade torchlab"):
        torchlab.load(path)
    status, err = one_line_error(capsys, ["evaluate", str(path)])
    assert status == 2 and "newer torchlab" in err and str(path) in err


def test_a_torch_file_of_someone_else_is_refused_with_one_line(written, tmp_path, capsys):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": torch.load(written, weights_only=True)["state_dict"], "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="not a torchlab checkpoint"):
        torchlab.load(path)
    status, err = one_line_error(capsys, ["evaluate", str(path)])
    assert status == 2 and "not a torchlab checkpoint" in err


def test_another_format_marker_is_refused(written, tmp_path):
    with pytest.raises(CheckpointError, match="not a torchlab checkpoint"):
        torchlab.load(edited(written, tmp_path, format="lightning-checkpoint"))


@pytest.mark.parametrize("key", ["format_version", "task", "model", "state_dict"])
def test_a_checkpoint_missing_a_required_key_is_refused_naming_it(written, tmp_path, capsys, key):
    path = edited(written, tmp_path, **{key: None})
    with pytest.raises(CheckpointError, match=rf"incomplete torchlab checkpoint \(missing {key}\)"):
        torchlab.load(path)
    status, err = one_line_error(capsys, ["evaluate", str(path)])
    assert status == 2 and f"missing {key}" in err


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_checkpoint_with_non_finite_weights_is_refused_naming_the_tensor(written, tmp_path, capsys, bad):
    state = torch.load(written, weights_only=True)["state_dict"]
    name = next(iter(state))
    state = {**state, name: state[name].clone()}
    state[name].view(-1)[0] = bad
    path = edited(written, tmp_path, state_dict=state)
    with pytest.raises(CheckpointError, match=rf"non-finite weights \(1 NaN or infinite values in {name}\)"):
        torchlab.load(path)
    status, err = one_line_error(capsys, ["evaluate", str(path)])
    assert status == 2 and "non-finite weights" in err


def test_refusing_a_checkpoint_leaves_the_file_as_it_was(written, tmp_path, capsys):
    path = edited(written, tmp_path, format_version=2)
    before = path.read_bytes()
    one_line_error(capsys, ["evaluate", str(path)])
    assert path.read_bytes() == before


def test_a_copy_keeps_opening(written, tmp_path):
    """A checkpoint is one self-contained file: copied elsewhere, it opens on its own."""
    copy = tmp_path / "elsewhere" / "model.pt"
    copy.parent.mkdir()
    shutil.copy(written, copy)
    _, meta = torchlab.load(copy)
    assert meta["path"] == str(copy)


def test_a_format_version_that_is_not_a_number_is_refused_in_one_line(tmp_path, capsys):
    import torch

    from torchlab.cli.main import main
    from torchlab.engine.checkpoint import read_checkpoint
    from torchlab.errors import CheckpointError

    good = tmp_path / "good.pt"
    assert (
        main(["train", "digit-mlp", "--epochs", "1", "--out", str(tmp_path / "run"), "--no-figures", "--no-progress"])
        == 0
    )
    checkpoint = read_checkpoint(tmp_path / "run" / "best.pt")
    checkpoint["format_version"] = "1"
    torch.save(checkpoint, good)
    with pytest.raises(CheckpointError, match="format_version that is not a whole number"):
        read_checkpoint(good)
    capsys.readouterr()
    assert main(["evaluate", str(good)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "format_version" in err
