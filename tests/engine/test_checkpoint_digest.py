"""Issue 40, part 2: a checkpoint knows when it is damaged. save_checkpoint records a SHA-256 digest of the
tensors, every load path verifies it (evaluate, predict, export, load, --resume), and a mismatch is one line
"<file> is damaged: ...". Old checkpoints without a digest still load. --resume refuses non-finite weights or
optimizer state and another task's last.pt, and a NaN loss calls last.pt good only after checking it."""

from __future__ import annotations

import shutil
import struct

import pytest
import torch

import torchlab
from torchlab.cli.main import main
from torchlab.engine.callbacks import Callback
from torchlab.engine.checkpoint import DIGEST_KEY, read_checkpoint, save_checkpoint, tensor_digest
from torchlab.errors import CheckpointError, NonFiniteLoss

RUN = ["--device", "cpu", "--no-progress", "--no-figures"]


def one_line(capsys, status: int) -> str:
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A finished 3-epoch digit-mlp run (best.pt, last.pt) and its test accuracy."""
    out = tmp_path_factory.mktemp("digits")
    result = torchlab.train("digit-mlp", out=out, device="cpu", progress=False, figures=False, epochs=3)
    return out, result.summary["test_accuracy"]


def flip_inside(path, tensor: torch.Tensor, copy_to, offset: int = 100):
    """A copy of the checkpoint file with one bit flipped inside the stored bytes of `tensor`."""
    raw = bytearray(path.read_bytes())
    at = raw.find(tensor.contiguous().numpy().tobytes())
    assert at > 0, "the tensor's bytes are stored as they are in the zip"
    raw[at + offset] ^= 0x40
    copy_to.write_bytes(bytes(raw))
    return copy_to


def largest(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return max((t for t in tensors.values() if isinstance(t, torch.Tensor)), key=torch.Tensor.numel)


def test_a_checkpoint_records_the_digest_of_its_contents(digits_run):
    out, _ = digits_run
    checkpoint = read_checkpoint(out / "best.pt")
    saved = checkpoint[DIGEST_KEY]
    assert set(saved) == {"algorithm", "state_dict", "optimizer", "other"} and saved["algorithm"] == "sha256"
    assert tensor_digest(checkpoint) == saved and all(len(saved[p]) == 64 for p in ("state_dict", "optimizer"))
    changed = {**checkpoint, "state_dict": {k: v.clone() for k, v in checkpoint["state_dict"].items()}}
    next(iter(changed["state_dict"].values())).view(-1)[0] += 1e-6
    assert tensor_digest(changed)["state_dict"] != saved["state_dict"]
    assert tensor_digest(changed)["optimizer"] == saved["optimizer"]
    assert tensor_digest({**checkpoint, "normalization": {"divide_by": 16.5}})["other"] != saved["other"]


def test_a_changed_metadata_value_is_damage_too(digits_run, tmp_path, capsys):
    """normalization's divide_by is a float inside data.pkl: changed, every prediction would be off, silently."""
    out, _ = digits_run
    raw = (out / "best.pt").read_bytes()
    at = raw.find(b"G" + struct.pack(">d", 16.0), raw.find(b"divide_by"))  # pickle's BINFLOAT after the key
    assert at > 0
    bad = tmp_path / "best.pt"
    bad.write_bytes(raw[: at + 2] + bytes([raw[at + 2] ^ 0x01]) + raw[at + 3 :])  # 16.0 -> 17.0
    err = one_line(capsys, main(["evaluate", str(bad), "--device", "cpu"]))
    assert f"{bad} is damaged: the SHA-256 digest of its metadata and other state does not match" in err


def test_flipped_weight_bytes_are_refused_by_evaluate_predict_and_export(digits_run, tmp_path, capsys):
    """The issue's example: a bit flipped in best.pt's weights evaluated to 0.908 instead of 0.933, exit 0."""
    out, accuracy = digits_run
    weights = largest(read_checkpoint(out / "best.pt")["state_dict"])
    bad = flip_inside(out / "best.pt", weights, tmp_path / "best.pt")
    for argv in (
        ["evaluate", str(bad), "--device", "cpu"],
        ["predict", str(bad), "--index", "0", "--device", "cpu"],
        ["export", str(bad), "--out", str(tmp_path / "exported")],
    ):
        err = one_line(capsys, main(argv))
        assert f"{bad} is damaged: the SHA-256 digest of its weights does not match the one written with it" in err
    assert not (tmp_path / "exported").exists()
    with pytest.raises(CheckpointError, match="is damaged"):
        torchlab.load(bad)
    assert torchlab.evaluate(out / "best.pt", device="cpu")["accuracy"] == accuracy  # the intact file


def test_damaged_optimizer_state_is_refused_by_resume(digits_run, tmp_path, capsys):
    out, _ = digits_run
    state = read_checkpoint(out / "last.pt")["optimizer"]["state"]
    moment = max((t for s in state.values() for t in s.values() if t.dim() > 0), key=torch.Tensor.numel)
    run = tmp_path / "run"
    run.mkdir()
    flip_inside(out / "last.pt", moment, run / "last.pt")
    err = one_line(capsys, main(["train", "digit-mlp", "--resume", "--epochs", "5", "--out", str(run), *RUN]))
    assert f"{run / 'last.pt'} is damaged: the SHA-256 digest of its optimizer state does not match" in err
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]


def test_a_checkpoint_written_before_digests_still_loads_and_resumes(digits_run, tmp_path):
    out, accuracy = digits_run
    run = tmp_path / "old"
    run.mkdir()
    for name in ("best.pt", "last.pt"):
        checkpoint = read_checkpoint(out / name)
        del checkpoint[DIGEST_KEY]
        torch.save(checkpoint, run / name)  # as torchlab wrote it before the digest
    assert torchlab.evaluate(run / "best.pt", device="cpu")["accuracy"] == accuracy
    resumed = torchlab.train("digit-mlp", out=run, device="cpu", resume=True, progress=False, figures=False, epochs=4)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert DIGEST_KEY in read_checkpoint(run / "last.pt")  # the resumed run writes digests


@pytest.mark.parametrize("part", ["weights", "optimizer state"])
def test_resume_refuses_non_finite_weights_or_optimizer_state(digits_run, tmp_path, capsys, part):
    out, _ = digits_run
    checkpoint = read_checkpoint(out / "last.pt")
    if part == "weights":
        largest(checkpoint["state_dict"]).fill_(float("nan"))
    else:
        next(iter(checkpoint["optimizer"]["state"].values()))["exp_avg"].view(-1)[3] = float("inf")
    run = tmp_path / "run"
    save_checkpoint(checkpoint, run / "last.pt")  # a correct digest: the values themselves are the problem
    err = one_line(capsys, main(["train", "digit-mlp", "--resume", "--epochs", "5", "--out", str(run), *RUN]))
    assert f"{run / 'last.pt'} holds non-finite {part} (" in err and "cannot be resumed" in err
    assert "--lr" not in err and sorted(p.name for p in run.iterdir()) == ["last.pt"]


def test_resuming_another_tasks_checkpoint_names_both_tasks(tiny_keypoint_checkpoint, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_keypoint_checkpoint.parent / "last.pt", run / "last.pt")
    err = one_line(capsys, main(["train", "digit-mlp", "--resume", "--out", str(run), *RUN]))
    assert f"{run / 'last.pt'} is a checkpoint of task keypoints, not digits" in err  # the tasks' names
    assert "--lr" not in err and "--warmup" not in err


class PoisonAfterFirstEpoch(Callback):
    """After epoch 1 (last.pt written): the weights and that last.pt become NaN, as a last step gone wrong does."""

    def on_epoch_end(self, trainer, row):
        if len(trainer.history) == 1:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.fill_(float("nan"))
            last = trainer.checkpoint_dir / "last.pt"
            checkpoint = read_checkpoint(last)
            for tensor in checkpoint["state_dict"].values():
                if tensor.is_floating_point():
                    tensor.fill_(float("nan"))
            save_checkpoint(checkpoint, last)


def test_a_nan_loss_calls_last_pt_good_only_when_it_is(tmp_path):
    with pytest.raises(NonFiniteLoss) as info:
        torchlab.train(
            "digit-mlp",
            out=tmp_path / "bad",
            device="cpu",
            progress=False,
            figures=False,
            epochs=3,
            callbacks=[PoisonAfterFirstEpoch()],
        )
    assert info.value.epoch == 2 and info.value.checkpoint is None and "checkpoint" not in str(info.value)


def test_the_nan_loss_message_words_the_checkpoint_by_whether_it_was_checked(tmp_path):
    error = NonFiniteLoss("train_loss", float("nan"), 2, 0.1, ("lower the lr",), tmp_path / "last.pt")
    assert str(error).endswith(f"; the last checkpoint written (not checked) is {tmp_path / 'last.pt'}")
    assert str(error.with_checkpoint(tmp_path / "last.pt", checked=True)).endswith(
        f"; the last good checkpoint is {tmp_path / 'last.pt'}"
    )
