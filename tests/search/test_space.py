"""The search space: the task's default space, --search entries checked against the config at once (one line,
exit status 2, before torch or Optuna is imported), fields fixed by flags left out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from torchlab.cli.main import main
from torchlab.errors import UsageError
from torchlab.search.space import Choice, Range, build_space
from torchlab.tasks import get_task

TASK = get_task("digit-mlp")
RECIPE = TASK.recipes["default"]


def test_the_default_space_less_the_fixed_fields_plus_the_search_entries():
    space = build_space(
        RECIPE, TASK.search_space, ["lr=0.01:0.1", "label-smoothing=0,0.1", "ema=none,0.99"], fixed={"epochs", "hidden"}
    )
    assert "epochs" not in space and set(TASK.search_space) - {"epochs"} <= set(space)
    assert space["lr"] == Range(0.01, 0.1)  # replaced, no longer on a log scale
    assert space["label_smoothing"] == Choice((0.0, 0.1)) and space["ema"] == Choice((None, 0.99))
    assert space["batch_size"] == Choice((16, 32, 64, 128)) and space["standardize"] == Choice((True, False))
    assert build_space(RECIPE, TASK.search_space, ["epochs=2:5"], (), use_defaults=False) == {
        "epochs": Range(2, 5, integer=True)
    }


@pytest.mark.parametrize(
    "entry, message",
    [
        ("lrr=0.1:1", "DigitsConfig has no field 'lrr'; did you mean 'lr'?"),
        ("lr=0.3:0.1", "LOW must be below HIGH"),
        ("lr=0:0.1:log", "a log range needs LOW > 0"),
        ("lr=0.1:0.3:ln", "a range is LOW:HIGH or LOW:HIGH:log"),
        ("epochs=1.5:4", "LOW and HIGH must be whole numbers"),
        ("epochs=0:4", "--epochs must be a whole number >= 1, got 0"),
        ("optimizer=adamw,rmsprop", "--optimizer must be one of adamw, adam, sgd, got 'rmsprop'"),
        ("optimizer=0:1", "the field is not a number"),
        ("standardize=yes,no", "'yes' is not a value of this field"),
        ("lr", "write FIELD=LOW:HIGH"),
        ("hidden=8:64", "--hidden also fixes hidden"),
    ],
)
def test_a_bad_search_entry_is_one_line_and_exit_status_2(entry, message, capsys):
    assert main(["tune", "digit-mlp", "--hidden", "32", "--search", entry]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("torchlab tune: error: --search") and message in err, err


def test_a_space_with_nothing_left_to_search_is_refused():
    fixed = set(TASK.search_space)
    with pytest.raises(UsageError, match="nothing to search"):
        build_space(RECIPE, TASK.search_space, [], fixed)


def test_a_bad_entry_is_answered_before_torch_or_optuna_is_imported():
    code = (
        "import sys\nfrom torchlab.cli.main import main\nstatus = main(['tune', 'digit-mlp', '--search', "
        "'lr=1:0'])\nprint(status, 'torch' in sys.modules, 'optuna' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stderr
    assert "LOW must be below HIGH" in proc.stderr


def test_without_optuna_tune_says_how_to_install_it_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if torchlab[tune] were not installed
    assert main(["tune", "digit-mlp", "--trials", "2", "--out", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'torchlab[tune]'" in err
    assert not (tmp_path / "study").exists()
