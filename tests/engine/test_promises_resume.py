"""docs/guarantees.md, "Exact resume, and what it refuses": resuming with a different value for a field that is not
resume_safe is a one-line error naming the flag, its old and its new value, and leaves the run alone; the
resume_safe ones (epochs, batch size, early stopping, the time budget, accumulation, speed flags) may change."""

from __future__ import annotations

import shutil

import pytest
import torch

import torchlab
from torchlab.api import check_resume
from torchlab.cli.main import main
from torchlab.engine.checkpoint import save_checkpoint
from torchlab.errors import UsageError

RUN = dict(epochs=1, device="cpu", figures=False, progress=False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A one-epoch digit-mlp run of the default recipe (lr 0.03, hidden 32, ...)."""
    out = tmp_path_factory.mktemp("promises-resume") / "run"
    torchlab.train("digit-mlp", out=out, **RUN)
    return out


@pytest.fixture
def run(first_run, tmp_path):
    """A fresh copy of the first run's folder."""
    return shutil.copytree(first_run, tmp_path / "run")


# a field that fixes the data, the model or the optimization, and a value other than the recipe's
CHANGED = [
    ("lr", 0.5, "--lr"),
    ("weight_decay", 0.1, "--weight-decay"),
    ("optimizer", "sgd", "--optimizer"),
    ("schedule", "cosine", "--schedule"),
    ("warmup", 0.5, "--warmup"),
    ("grad_clip", 1.0, "--grad-clip"),
    ("label_smoothing", 0.2, "--label-smoothing"),
    ("hidden", 8, "--hidden"),
    ("init_std", 0.1, "--init-std"),
    ("standardize", False, "--standardize"),
    ("input_noise", 0.1, "--input-noise"),
    ("val_fraction", 0.2, "--val-fraction"),
]
# a field that may change on resume, and a new value
SAFE = [
    ("epochs", 3),
    ("batch_size", 32),
    ("batch_size", None),
    ("patience", 2),
    ("min_delta", 0.01),
    ("baseline", 0.5),
    ("start_from_epoch", 1),
    ("stopping_threshold", 0.1),
    ("divergence_threshold", 10.0),
    ("check_finite", False),
    ("max_time", "1h"),
    ("accumulate", 2),
    ("amp", True),
    ("compile", True),
    ("channels_last", True),
]


@pytest.mark.parametrize("name, value, flag", CHANGED, ids=[c[0] for c in CHANGED])
def test_resuming_with_a_changed_recipe_field_is_refused_naming_it(run, name, value, flag):
    before = (run / "last.pt").read_bytes()
    old = getattr(torchlab.get_recipe("digit-mlp"), name)
    with pytest.raises(UsageError) as refused:
        torchlab.train("digit-mlp", out=run, resume=True, **{**RUN, "epochs": 2, name: value})
    message = str(refused.value)
    assert message.startswith(f"--resume with {flag} {value!r} but {run / 'last.pt'} was trained with {old!r}")
    assert "\n" not in message
    assert (run / "last.pt").read_bytes() == before


@pytest.mark.parametrize("name, value", SAFE, ids=[f"{n}={v}" for n, v in SAFE])
def test_a_resume_safe_field_may_change(run, name, value):
    check_resume(run / "last.pt", torchlab.get_recipe("digit-mlp", **{"epochs": 1, name: value}))


def test_the_cli_refuses_a_changed_field_with_one_line_and_exit_2(run, capsys):
    before = (run / "last.pt").read_bytes()
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                "digit-mlp",
                "--resume",
                "--out",
                str(run),
                "--epochs",
                "2",
                "--hidden",
                "8",
                "--device",
                "cpu",
                "--no-progress",
                "--no-figures",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "--resume with --hidden 8 but" in err and "trained with 32" in err and "\n" not in err
    assert (run / "last.pt").read_bytes() == before


def test_a_resume_with_more_epochs_and_another_batch_size_trains_on(run):
    more = torchlab.train("digit-mlp", out=run, resume=True, **{**RUN, "epochs": 2, "batch_size": 32, "patience": 5})
    assert [row["epoch"] for row in more.history] == [1, 2]


def test_an_unchanged_recipe_resumes(run):
    check_resume(run / "last.pt", torchlab.get_recipe("digit-mlp", epochs=1))


def edit_config(run, change):
    checkpoint = torch.load(run / "last.pt", weights_only=True)
    change(checkpoint)
    save_checkpoint(checkpoint, run / "last.pt")  # as torchlab writes it: with the digest of the edited contents


def test_a_run_written_before_a_field_existed_resumes(run):
    """A field the checkpoint's config does not hold (added since) has nothing to compare against."""
    edit_config(run, lambda c: c["config"].pop("grad_clip"))
    check_resume(run / "last.pt", torchlab.get_recipe("digit-mlp", epochs=1))


def test_a_run_written_before_configs_were_recorded_resumes(run):
    edit_config(run, lambda c: c.pop("config"))
    check_resume(run / "last.pt", torchlab.get_recipe("digit-mlp", epochs=1, hidden=8))


def mnist_run(run, cfg):
    """The digit run's last.pt carrying the config of an mnist run, as a checkpoint stores it (tuples as lists)."""
    import dataclasses

    saved = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    edit_config(run, lambda c: c.update(config=saved))
    return run / "last.pt"


def test_a_tuple_field_resumes_unchanged_and_is_refused_changed(run):
    recipe = torchlab.get_recipe("mnist")
    path = mnist_run(run, recipe)
    check_resume(path, recipe)
    with pytest.raises(
        UsageError, match=r"^--resume with --channels \[4, 8, 16\] but .* was trained with \[8, 16, 32\]"
    ):
        check_resume(path, torchlab.get_recipe("mnist", channels=[4, 8, 16]))
