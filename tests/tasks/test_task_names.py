"""Tasks named for their problem (digits, mnist, patch, ring, keypoints), each with a `model` field; the old
task names (digit-mlp, keypoint-fcn, ...) are aliases: their task with their model fixed, in the CLI, the API
and the checkpoints written before the rename."""

from __future__ import annotations

import pytest
import torch

import torchlab
from torchlab.cli.main import main
from torchlab.engine.checkpoint import read_checkpoint, save_checkpoint
from torchlab.errors import UsageError
from torchlab.tasks import ALIASES, get_task, task_for

QUIET = {"device": "cpu", "figures": False, "progress": False}
FACES = ["--synthetic", "40", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--no-figures", "--no-progress"]
OLD_NAMES = {
    "digit-mlp": ("digits", "digit-mlp"),
    "keypoint-cnn": ("keypoints", "keypoint-cnn"),
    "keypoint-fcn": ("keypoints", "keypoint-fcn"),
    "keypoint-net": ("keypoints", "keypoint-net"),
    "patch-linear": ("patch", "patch-linear"),
    "ring-mlp": ("ring", "ring-mlp"),
}


def test_the_tasks_are_problems_each_with_a_default_model():
    assert torchlab.task_names() == ["digits", "keypoints", "mnist", "patch", "ring"]
    defaults = {name: get_task(name).default_model for name in torchlab.task_names()}
    assert defaults == {
        "digits": "digit-mlp",
        "keypoints": "keypoint-net",
        "mnist": "mnist-cnn",
        "patch": "patch-linear",
        "ring": "ring-mlp",
    }
    for name, model in defaults.items():
        assert torchlab.get_recipe(name).model == model  # the `model` field, default: the default model


@pytest.mark.parametrize("alias", list(OLD_NAMES))
def test_each_old_name_resolves_to_its_task_and_model(alias):
    task, model = OLD_NAMES[alias]
    assert ALIASES[alias] == (task, model)
    entry, fixed = task_for(alias)
    assert (entry.name, fixed) == (task, model)
    assert torchlab.api.find_task(alias).name == task and torchlab.get_recipe(alias).model == model
    assert torchlab.recipe_names(alias) == torchlab.recipe_names(task, model)
    assert model in get_task(alias).models


@pytest.mark.parametrize(
    "alias, fields",
    [("digit-mlp", {"epochs": 1}), ("ring-mlp", {"epochs": 2, "points": 60}), ("patch-linear", {"epochs": 2})],
)
def test_training_an_old_name_records_the_task_and_the_model_in_the_old_folder(alias, fields):
    task, model = OLD_NAMES[alias]
    result = torchlab.train(alias, **QUIET, **fields)  # the default folder: the name given, as before the rename
    assert result.task == task and result.summary["model"] == model
    assert result.best_checkpoint.parent.as_posix() == f"checkpoints/{alias}"
    meta = read_checkpoint(result.last_checkpoint)
    assert (meta["task"], meta["model"]["name"], meta["config"]["model"]) == (task, model, model)


def test_a_new_run_lands_in_the_task_folder_and_prints_task_and_model(capsys):
    assert main(["train", "digits", "--epochs", "1", "--no-figures", "--no-progress", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["task: digits", "model: digit-mlp"]
    assert read_checkpoint("checkpoints/digits/best.pt")["task"] == "digits"


@pytest.fixture(scope="module")
def fcn_runs(tmp_path_factory):
    """keypoint-fcn's seed recipe on 40 synthetic faces, trained as `keypoints --model keypoint-fcn` and as the
    old task `keypoint-fcn`."""
    root = tmp_path_factory.mktemp("fcn")
    for name, argv in (("new", ["keypoints", "--model", "keypoint-fcn"]), ("old", ["keypoint-fcn"])):
        assert main(["train", *argv, "--recipe", "seed", *FACES, "--out", str(root / name)]) == 0
    return root


def test_keypoints_with_model_fcn_trains_exactly_what_the_old_task_trained(fcn_runs):
    new, old = read_checkpoint(fcn_runs / "new" / "best.pt"), read_checkpoint(fcn_runs / "old" / "best.pt")
    assert new["model"]["name"] == old["model"]["name"] == "keypoint-fcn" and new["task"] == old["task"] == "keypoints"
    assert new["config"] == old["config"] and new["recipe"] == "seed"
    assert new["state_dict"].keys() == old["state_dict"].keys()
    assert all(torch.equal(new["state_dict"][k], old["state_dict"][k]) for k in new["state_dict"])
    seed = torchlab.get_recipe("keypoints", "seed", model="keypoint-fcn")  # the practical's recipe, as it was
    assert seed == torchlab.get_recipe("keypoint-fcn", "seed")
    assert (
        seed.epochs,
        seed.lr,
        seed.batch_size,
        seed.optimizer,
        seed.schedule,
        seed.missing,
        seed.augment,
        seed.mean_init,
        seed.width,
    ) == (20, 1e-3, 64, "adam", "none", "drop", False, False, None)
    default = torchlab.get_recipe("keypoints", model="keypoint-fcn")
    assert (default.epochs, default.optimizer, default.schedule) == (30, "adam", "cosine")  # not keypoint-net's
    assert torchlab.recipe_names("keypoints", "keypoint-fcn") == ["default", "seed"]  # "cpu" is keypoint-net's


def test_a_checkpoint_of_an_old_task_name_evaluates_predicts_and_resumes(fcn_runs, tmp_path, capsys):
    """Checkpoints written before the rename say task "keypoint-fcn" and have no `model` in their config."""
    folder = tmp_path / "old-run"
    folder.mkdir()
    for name in ("best.pt", "last.pt"):
        checkpoint = read_checkpoint(fcn_runs / "old" / name)
        checkpoint["task"] = "keypoint-fcn"
        for field in ("model", "width", "flip_average", "head"):  # fields the old KeypointConfig did not have
            del checkpoint["config"][field]
        save_checkpoint(checkpoint, folder / name)
    loaded = torchlab.open_checkpoint(folder / "best.pt", device="cpu")
    assert loaded.task.name == "keypoints" and loaded.meta["task"] == "keypoint-fcn"
    assert torchlab.evaluate(folder / "best.pt", device="cpu")["val_rmse_px"] > 0
    assert len(torchlab.predict(folder / "best.pt", index=[0], device="cpu")) == 1
    assert main(["evaluate", str(folder / "best.pt"), "--device", "cpu"]) == 0
    assert "(task keypoint-fcn, epoch 1)" in capsys.readouterr().out
    with pytest.raises(
        UsageError,
        match=r"--resume with --model keypoint-net but .* holds keypoint-fcn; resume "
        r"with --model keypoint-fcn",
    ):
        torchlab.train("keypoints", "seed", out=folder, resume=True, synthetic=40, batch_size=16, **QUIET)
    resumed = torchlab.train(
        "keypoint-fcn", "seed", out=folder, resume=True, epochs=2, synthetic=40, batch_size=16, **QUIET
    )  # the old config has no `model` field: not a conflict
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert read_checkpoint(folder / "last.pt")["task"] == "keypoints"


def test_torchlab_models_groups_the_models_by_task(capsys):
    assert main(["models"]) == 0
    groups: dict[str, list[str]] = {}
    heading = ""
    for line in capsys.readouterr().out.splitlines()[1:]:
        if line.startswith("  "):
            groups[heading].append(line.split()[0])
        else:
            heading = line.split(":")[0]
            groups[heading] = []
    assert groups == {
        "digits": ["digit-mlp"],
        "keypoints": ["keypoint-net", "keypoint-cnn", "keypoint-fcn"],
        "mnist": ["mnist-cnn", "mnist-fast", "mnist-simple-cnn", "mnist-tiny-cnn", "mnist-mlp", "mnist-linear"],
        "patch": ["patch-linear"],
        "ring": ["ring-mlp"],
        "no task (hand-set or explored by the lessons": ["landscape-net", "ring-net"],
    }
    assert sorted(m for models in groups.values() for m in models) == torchlab.model_names()


def test_train_help_lists_each_old_name_as_an_alias(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for alias, (task, model) in OLD_NAMES.items():
        assert f"{alias} alias of {task} --model {model}" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["keypoints", "--model", "keypoint-cnn", "--width", "8"], ("--width", "keypoint-cnn")),
        (["keypoint-fcn", "--flip-average"], ("--flip-average", "keypoint-fcn")),
        (["keypoints", "--model", "keypoint-cnn", "--head", "regression"], ("--head", "keypoint-cnn")),
        (["keypoint-fcn", "--model", "keypoint-net"], ("keypoint-fcn is keypoints with --model keypoint-fcn",)),
        (["keypoints", "--model", "keypoint-cnn", "--recipe", "cpu"], ("unknown recipe 'cpu'", "keypoint-cnn")),
    ],
)
def test_a_field_or_recipe_the_model_lacks_is_one_line_and_exit_2(argv, words, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *argv, *FACES, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(word in err for word in words), err
    assert not out.exists()
    with pytest.raises(UsageError, match="--width is a field of keypoint-net, not of --model keypoint-fcn"):
        torchlab.get_recipe("keypoints", model="keypoint-fcn", width=8)
