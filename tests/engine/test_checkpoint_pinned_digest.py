"""The checkpoint digest, pinned: what it covers (one byte, key, dtype or list item changes its part), the value it
has for a fixed checkpoint (a file written today must verify tomorrow), the one-line "<path> is damaged: ..."
naming the damaged parts, and load's memory check of the model a checkpoint describes. In-process and tiny."""

from __future__ import annotations

import copy

import pytest
import torch

from torchlab.engine.checkpoint import (
    DIGEST_KEY,
    FORMAT,
    load,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
    sound_checkpoint,
    tensor_digest,
)
from torchlab.errors import CheckpointError
from torchlab.models import build_model
from torchlab.runtime import guards


def fixed_checkpoint() -> dict:
    """A checkpoint with every kind of value a weights_only load returns: tensors of two dtypes, nested dicts,
    lists, tuples, numbers, strings, bytes, None, a bool and a dtype (no versions: it must not change)."""
    return {
        "format": FORMAT,
        "format_version": 1,
        "task": "custom",
        "model": {"name": "digit-mlp", "class": "DigitMLP", "kwargs": {"hidden": 4}},
        "state_dict": {
            "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
            "b": torch.tensor([1, -2], dtype=torch.int64),
        },
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
        "history": [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}],
        "normalization": (0.25, 2),
        "note": None,
        "flag": True,
        "blob": b"ab",
        "dtype": torch.float16,
    }


# tensor_digest(fixed_checkpoint()) as torchlab computes it: a change to how contents are hashed would call
# every checkpoint written before it damaged
PINNED = {
    "algorithm": "sha256",
    "state_dict": "fb26331dbf912abe62d3a8d76dea9b7c4ac55e980c1e0b35395ae59665f8acfc",
    "optimizer": "5098df11a8b42febfa0b17e627b724caf106f60acefc4a514c56fb8e7a9c61c7",
    "other": "38f9b7a9cb2754f22d8370152f32431466401001fe823aa5b1c1f5a2ebcc5b08",
}


def test_the_digest_of_a_fixed_checkpoint_is_pinned():
    assert tensor_digest(fixed_checkpoint()) == PINNED


def _flip_byte(c):
    c["state_dict"]["w"].reshape(-1).view(torch.uint8)[5] ^= 1


def _rename_weight(c):
    c["state_dict"] = {"v" if k == "w" else k: v for k, v in c["state_dict"].items()}


def _swap_weight_names(c):  # same shapes and dtypes, names swapped
    c["state_dict"] = {"w": torch.ones(2), "b": torch.zeros(2)}


def _unswapped(c):
    c["state_dict"] = {"w": torch.zeros(2), "b": torch.ones(2)}


def _retype(c):
    c["state_dict"]["w"] = c["state_dict"]["w"].double()


def _extra_tensor(c):
    c["state_dict"]["extra"] = torch.zeros(1)


def _optimizer_step(c):
    c["optimizer"]["state"][0]["step"] = torch.tensor(4.0)


def _optimizer_lr(c):
    c["optimizer"]["param_groups"][0]["lr"] = 0.2


def _history_item(c):
    c["history"][1]["loss"] = 0.125


def _tuple_item(c):
    c["normalization"] = (0.25, 3)


def _rename_top_key(c):  # in place: the order of the keys is unchanged
    renamed = {"remark" if k == "note" else k: v for k, v in c.items()}
    c.clear()
    c.update(renamed)


def _rename_nested_key(c):
    c["model"]["kwargs"] = {"classes": 4}


def _int_for_float(c):
    c["history"][0]["loss"] = 1


EDITS = {
    "one weight byte": ("state_dict", _flip_byte),
    "a weight's name": ("state_dict", _rename_weight),
    "a weight's dtype": ("state_dict", _retype),
    "one more tensor": ("state_dict", _extra_tensor),
    "an optimizer tensor": ("optimizer", _optimizer_step),
    "an optimizer number in a list": ("optimizer", _optimizer_lr),
    "a number in a list of dicts": ("other", _history_item),
    "a number in a tuple": ("other", _tuple_item),
    "a metadata key": ("other", _rename_top_key),
    "a model argument's name": ("other", _rename_nested_key),
    "a value's type": ("other", _int_for_float),
}


@pytest.mark.parametrize("edit", EDITS)
def test_one_change_changes_the_digest_of_its_part_only(edit):
    part, change = EDITS[edit]
    before = tensor_digest(fixed_checkpoint())
    edited = fixed_checkpoint()
    change(edited)
    after = tensor_digest(edited)
    assert after[part] != before[part], edit
    assert {p: h for p, h in after.items() if p != part} == {p: h for p, h in before.items() if p != part}, edit


def test_swapping_two_weights_names_changes_the_digest():
    first, second = fixed_checkpoint(), fixed_checkpoint()
    _swap_weight_names(first)
    _unswapped(second)
    assert tensor_digest(first)["state_dict"] != tensor_digest(second)["state_dict"]


def tiny_checkpoint(hidden: int = 8) -> dict:
    torch.manual_seed(0)
    model = build_model("digit-mlp", hidden=hidden)
    return make_checkpoint(
        task="custom", model_name="digit-mlp", model=model, model_kwargs={"hidden": hidden}, metrics={"acc": 0.5}
    )


def damage(path, weights: bool = True, metadata: bool = False):
    """Change the contents of a saved checkpoint behind its digest, as bytes changed on disk would."""
    raw = torch.load(path, weights_only=True)
    if weights:
        raw["state_dict"]["hidden.weight"][0, 0] += 1.0
    if metadata:
        raw["metrics"]["acc"] = 0.75
    torch.save(raw, path)
    return path


def damaged_message(path) -> str:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message


@pytest.mark.parametrize(
    ("weights", "metadata", "parts"),
    [
        (True, False, "weights"),
        (False, True, "metadata and other state"),
        (True, True, "weights and metadata and other state"),
    ],
)
def test_a_damaged_checkpoint_is_one_line_naming_the_file_and_the_damaged_parts(tmp_path, weights, metadata, parts):
    path = save_checkpoint(tiny_checkpoint(), tmp_path / "best.pt")
    assert read_checkpoint(path)[DIGEST_KEY]["algorithm"] == "sha256"
    damage(path, weights=weights, metadata=metadata)
    message = damaged_message(path)
    assert message.startswith(f"{path} is damaged: the SHA-256 digest of its {parts} does not match"), message
    assert sound_checkpoint(path) is None
    with pytest.raises(CheckpointError, match="is damaged"):
        load(path)


@pytest.mark.parametrize("record", ["0123abcd", {"algorithm": "md5"}, "digest-record-of-sha256"])
def test_an_unreadable_digest_record_is_damage(tmp_path, record):
    checkpoint = tiny_checkpoint()
    path = tmp_path / "odd.pt"
    if isinstance(record, dict):  # the right hashes under another algorithm's name
        record = {**tensor_digest(checkpoint), **record}
    torch.save({**checkpoint, DIGEST_KEY: record}, path)
    assert damaged_message(path).startswith(f"{path} is damaged: its digest record is unreadable")


def test_a_checkpoint_without_digest_still_loads(tmp_path):
    checkpoint = tiny_checkpoint()
    path = tmp_path / "old.pt"
    torch.save(checkpoint, path)  # as torchlab wrote checkpoints before digests
    model, meta = load(path)
    assert DIGEST_KEY not in read_checkpoint(path)
    assert meta["metrics"] == {"acc": 0.5}
    x = torch.rand(3, 64)
    expected = build_model("digit-mlp", hidden=8)
    expected.load_state_dict(checkpoint["state_dict"])
    torch.testing.assert_close(model(x), expected(x))
    assert sound_checkpoint(path) == path


def test_sound_checkpoint_is_none_for_non_finite_weights_and_the_path_for_a_good_file(tmp_path):
    checkpoint = tiny_checkpoint()
    good = save_checkpoint(checkpoint, tmp_path / "good.pt")
    bad = copy.deepcopy(checkpoint)
    bad["state_dict"]["output.bias"][3] = float("nan")
    bad = save_checkpoint(bad, tmp_path / "nan.pt")  # its digest fits: only the NaN makes it unsound
    assert sound_checkpoint(good) == good
    assert sound_checkpoint(bad) is None
    assert sound_checkpoint(tmp_path / "missing.pt") is None


def model_bytes(hidden: int) -> int:
    model = build_model("digit-mlp", hidden=hidden)
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def test_load_refuses_a_model_over_the_memory_budget_by_its_arguments(tmp_path, monkeypatch):
    """The budget lies between the default digit-mlp (hidden 32) and the one the file describes (hidden 64): the
    check must size the model with the file's arguments, in bytes, and name the file."""
    path = save_checkpoint(tiny_checkpoint(hidden=64), tmp_path / "big.pt")
    small, big = model_bytes(32), model_bytes(64)
    assert small < big
    monkeypatch.setattr(guards, "memory_budget", lambda device="cpu": (small + big) // 2)
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path} describes a model of 0.0 GB, over the memory budget"), message
    assert "its model arguments are damaged or it needs a bigger machine" in message


@pytest.mark.parametrize("budget", ["exact", None])
def test_load_accepts_a_model_that_fits_the_budget_exactly_or_an_unknown_budget(tmp_path, monkeypatch, budget):
    path = save_checkpoint(tiny_checkpoint(hidden=64), tmp_path / "fits.pt")
    limit = model_bytes(64) if budget == "exact" else None
    monkeypatch.setattr(guards, "memory_budget", lambda device="cpu": limit)
    model, meta = load(path)
    assert model.hidden.out_features == 64 and meta["path"] == str(path)


@pytest.mark.accelerator
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: load(device='cuda') needs one")
def test_load_puts_the_model_on_the_device_asked_for(tmp_path):
    path = save_checkpoint(tiny_checkpoint(), tmp_path / "best.pt")
    model, _ = load(path, device="cuda")
    assert {p.device.type for p in model.parameters()} == {"cuda"}
    assert not model.training
