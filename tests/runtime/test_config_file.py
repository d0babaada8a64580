"""Config files: every run folder's config.toml replays the run (`train --config RUN/config.toml`), a file's
values sit between the recipe's and the flags', and a wrong key or value is one line naming key and file."""

from __future__ import annotations

import torch

from torchlab.cli.main import main
from torchlab.runtime.config_file import read_config_file, typed_values
from torchlab.tasks.digits.config import DigitsConfig

RUN = ("--no-figures", "--no-progress", "--device", "cpu")


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_a_run_replayed_from_its_config_toml_has_the_same_weights(tmp_path, capsys):
    first, again = tmp_path / "first", tmp_path / "again"
    assert (
        main(
            [
                "train",
                "digit-mlp",
                "--epochs",
                "3",
                "--seed",
                "3",
                "--batch-size",
                "32",
                "--patience",
                "none",
                "--standardize",
                "--out",
                str(first),
                *RUN,
            ]
        )
        == 0
    )
    file = read_config_file(first / "config.toml")
    assert (file.task, file.recipe, file.seed) == ("digits", "default", 3)  # digit-mlp: an old name of digits
    values = typed_values(file, DigitsConfig)
    assert values["patience"] is None and values["init_std"] is None and values["schedule"] == "onecycle"
    assert DigitsConfig(**values).batch_size == 32 and values["standardize"] is True  # every field, typed
    # no task, no seed, no flags: all of it comes from the file
    assert main(["train", "--config", str(first / "config.toml"), "--out", str(again), *RUN]) == 0
    a, b = weights(first / "best.pt"), weights(again / "best.pt")
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert (again / "config.toml").read_text() == (first / "config.toml").read_text()
    capsys.readouterr()


def test_the_recipe_then_the_file_then_the_flags(tmp_path, capsys):
    (tmp_path / "mine.toml").write_text('epochs = 2\nlr = 0.01\nbatch_size = "none"\n')
    assert (
        main(
            [
                "train",
                "digit-mlp",
                "--config",
                str(tmp_path / "mine.toml"),
                "--lr",
                "0.02",
                "--seed",
                "1",
                "--out",
                str(tmp_path / "run"),
                *RUN,
            ]
        )
        == 0
    )
    file = read_config_file(tmp_path / "run" / "config.toml")
    values = typed_values(file, DigitsConfig)
    assert values["epochs"] == 2 and values["lr"] == 0.02 and values["batch_size"] is None  # file, flag, file
    assert values["weight_decay"] == 0.00664 and values["schedule"] == "onecycle"  # the recipe's
    assert file.seed == 1 and file.recipe == "default"
    capsys.readouterr()


def test_unknown_or_mistyped_keys_are_one_line_naming_key_and_file(tmp_path, capsys):
    cases = {
        "lrr = 0.1\n": "unknown key 'lrr'; did you mean 'lr'?",
        'epochs = "ten"\n': "key 'epochs' must be",
        "standardize = 1\n": "key 'standardize' must be true or false",
        "epochs = 0\n": "--epochs must be",
        "[model]\nhidden = 3\n": "[model] is a table",
        'task = "nope"\n': "unknown task 'nope'",
    }
    for number, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{number}.toml"
        path.write_text(text)
        assert main(["train", "digit-mlp", "--config", str(path), "--out", str(tmp_path / "run"), *RUN]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (text, err)
        assert str(path) in err or "unknown task" in err, err
    assert not (tmp_path / "run").exists()
    (tmp_path / "anon.toml").write_text("epochs = 2\n")
    assert main(["train", "--config", str(tmp_path / "anon.toml")]) == 2
    assert "names no task; give one: torchlab train TASK --config" in capsys.readouterr().err


def test_a_run_that_fails_before_training_leaves_no_config_behind(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "digit-mlp", "--hidden", str(10**12), "--out", str(out), *RUN]) == 2
    assert not out.exists()
    capsys.readouterr()
