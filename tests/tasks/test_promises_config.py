"""docs/guarantees.md, "One-line errors, exit status 2": a value no training can use (out of range, the wrong kind,
NaN or infinity where a number belongs) is refused when the config is built, naming the flag and what it wants,
before anything runs; the edge of each rule is accepted. Recipes are frozen data, and a time budget reads
as the units its help text gives."""

from __future__ import annotations

import dataclasses

import pytest

import torchlab
from torchlab.cli.main import main
from torchlab.config import duration_seconds
from torchlab.errors import UsageError

NAN, INF = float("nan"), float("inf")

# (field, a value its rule refuses, the flag and what the message says it wants)
REFUSED = [
    ("epochs", 0, "--epochs must be a whole number >= 1"),
    ("epochs", 2.5, "--epochs must be a whole number >= 1"),
    ("epochs", True, "--epochs must be a whole number >= 1"),
    ("lr", 0.0, "--lr must be a finite number > 0"),
    ("lr", -0.1, "--lr must be a finite number > 0"),
    ("lr", NAN, "--lr must be a finite number > 0"),
    ("lr", INF, "--lr must be a finite number > 0"),
    ("batch_size", 0, "--batch-size must be a whole number >= 1"),
    ("weight_decay", -0.1, "--weight-decay must be a finite number >= 0"),
    ("weight_decay", INF, "--weight-decay must be a finite number >= 0"),
    ("optimizer", "lbfgs", "--optimizer must be one of adamw, adam, sgd"),
    ("schedule", "step", "--schedule must be one of none, onecycle, cosine"),
    ("warmup", 0.0, "--warmup must be in (0, 1)"),
    ("warmup", 1.0, "--warmup must be in (0, 1)"),
    ("warmup", NAN, "--warmup must be in (0, 1)"),
    ("warmup", 1.5, "--warmup must be in (0, 1)"),
    ("patience", -1, "--patience must be a whole number >= 0"),
    ("min_delta", -0.1, "--min-delta must be a finite number >= 0"),
    ("min_delta", INF, "--min-delta must be a finite number >= 0"),
    ("baseline", NAN, "--baseline must be a finite number"),
    ("baseline", INF, "--baseline must be a finite number"),
    ("start_from_epoch", -1, "--start-from-epoch must be a whole number >= 0"),
    ("stopping_threshold", NAN, "--stopping-threshold must be a finite number"),
    ("divergence_threshold", -INF, "--divergence-threshold must be a finite number"),
    ("max_time", "10 minutes", "--max-time must be a duration such as 90s, 15m or 2h"),
    ("max_time", 0, "--max-time must be a duration"),
    ("max_time", "-5m", "--max-time must be a duration"),
    ("max_time", True, "--max-time must be a duration"),
    ("accumulate", 0, "--accumulate must be a whole number >= 1"),
    ("grad_clip", 0.0, "--grad-clip must be a finite number > 0"),
    ("grad_clip", INF, "--grad-clip must be a finite number > 0"),
    ("label_smoothing", 1.0, "--label-smoothing must be in [0, 1)"),
    ("label_smoothing", 1.5, "--label-smoothing must be in [0, 1)"),
    ("hidden", 0, "--hidden must be a whole number >= 1"),
    ("init_std", 0.0, "--init-std must be a finite number > 0"),
    ("input_noise", -0.1, "--input-noise must be a finite number >= 0"),
    ("val_fraction", 0.5, "--val-fraction must be in [0, 0.5)"),
    ("val_fraction", 0.7, "--val-fraction must be in [0, 0.5)"),
]
# the edge of each rule, and values just inside it: accepted
ACCEPTED = [
    ("epochs", 1),
    ("lr", 1e-12),
    ("lr", 5.0),
    ("batch_size", 1),
    ("batch_size", None),
    ("weight_decay", 0.0),
    ("optimizer", "sgd"),
    ("optimizer", "adam"),
    ("schedule", "cosine"),
    ("schedule", "none"),
    ("warmup", 1e-6),
    ("warmup", 0.999),
    ("patience", 0),
    ("patience", None),
    ("min_delta", 0.0),
    ("baseline", -3.5),
    ("start_from_epoch", 0),
    ("stopping_threshold", 0.0),
    ("divergence_threshold", 1e9),
    ("max_time", "90s"),
    ("max_time", 2.5),
    ("max_time", None),
    ("accumulate", 1),
    ("grad_clip", 1e-6),
    ("grad_clip", None),
    ("label_smoothing", 0.0),
    ("hidden", 1),
    ("init_std", 1e-3),
    ("input_noise", 0.0),
    ("val_fraction", 0.0),
    ("val_fraction", 0.499),
]


@pytest.mark.parametrize("name, value, message", REFUSED, ids=[f"{n}={v!r}" for n, v, _ in REFUSED])
def test_a_value_outside_its_rule_is_refused_naming_the_flag(name, value, message):
    with pytest.raises(UsageError) as refused:
        torchlab.get_recipe("digit-mlp", **{name: value})
    assert str(refused.value).startswith(message) and str(refused.value).endswith(f"got {value!r}")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name, value", ACCEPTED, ids=[f"{n}={v!r}" for n, v in ACCEPTED])
def test_the_edge_of_each_rule_is_accepted(name, value):
    assert getattr(torchlab.get_recipe("digit-mlp", **{name: value}), name) == value


@pytest.mark.parametrize(
    "flag, value", [("--lr", "nan"), ("--min-delta", "inf"), ("--baseline", "nan"), ("--grad-clip", "inf")]
)
def test_the_cli_refuses_nan_and_infinity_with_one_line_and_writes_nothing(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "digit-mlp", flag, value, "--epochs", "1", "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{flag} must be" in err and err.endswith(f"got {value}") and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "text, seconds", [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1.5h", 5400), ("0.5m", 30), (45, 45)]
)
def test_a_time_budget_reads_in_seconds_minutes_and_hours(text, seconds):
    assert duration_seconds(text) == seconds


def test_recipes_are_frozen_so_a_run_cannot_change_them_for_the_next():
    recipe = torchlab.get_recipe("digit-mlp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.epochs = 3
    changed = torchlab.get_recipe("digit-mlp", epochs=3)
    assert changed.epochs == 3 and torchlab.get_recipe("digit-mlp").epochs == recipe.epochs


def test_a_misspelt_field_is_refused_naming_the_closest_one():
    with pytest.raises(UsageError) as refused:
        torchlab.get_recipe("digit-mlp", epoch=3)
    assert str(refused.value).startswith("DigitsConfig has no field 'epoch'; did you mean 'epochs'? valid fields: ")
    with pytest.raises(UsageError) as refused:
        torchlab.get_recipe("digit-mlp", zzz=3)
    assert str(refused.value).startswith("DigitsConfig has no field 'zzz'; valid fields: epochs, lr, ")


def test_a_list_for_a_tuple_field_makes_the_same_recipe():
    """mnist-cnn's widths given as a list (as JSON or a script would) are the tuple the recipe holds."""
    as_list = torchlab.get_recipe("mnist", channels=[4, 8, 16])
    assert as_list == torchlab.get_recipe("mnist", channels=(4, 8, 16)) and as_list.channels == (4, 8, 16)
    assert hash(as_list) == hash(torchlab.get_recipe("mnist", channels=(4, 8, 16)))


def test_with_patience_any_improvement_counts_unless_min_delta_says_otherwise(tmp_path):
    """Keras' and Lightning's early stopping: min_delta defaults to 0, so a run that keeps improving, however
    little (here by about 0.02 an epoch after the second), trains all its epochs."""
    run = dict(epochs=4, patience=1, device="cpu", figures=False, progress=False)
    kept = torchlab.train("digit-mlp", "adamw-20", out=tmp_path / "a", **run)
    assert [row["epoch"] for row in kept.history] == [1, 2, 3, 4]
    stopped = torchlab.train("digit-mlp", "adamw-20", out=tmp_path / "b", min_delta=0.1, **run)
    assert [row["epoch"] for row in stopped.history] == [1, 2, 3]


def test_a_run_that_names_no_speed_flag_records_them_off(tmp_path):
    """--amp, --compile and --channels-last are opt-in: a digit-mlp run given none trains with none, and its
    checkpoint (what `torchlab runs` and `torchlab compare` show) says so."""
    result = torchlab.train("digit-mlp", out=tmp_path, epochs=1, device="cpu", figures=False, progress=False)
    _, meta = torchlab.load(result.best_checkpoint)
    assert {name: meta["config"][name] for name in ("amp", "compile", "channels_last")} == {
        "amp": False,
        "compile": False,
        "channels_last": False,
    }
