"""torchlab tune's studies, with tiny trials of digit-mlp: pruning a planted bad trial, the figures and table,
two processes on one storage running exactly --trials trials, and --resume after a kill mid-trial."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import matplotlib.pyplot as plt
import pytest

optuna = pytest.importorskip("optuna", reason="torchlab[tune] (optuna) is not installed")

import torchlab  # noqa: E402
from conftest import ROOT  # noqa: E402
from torchlab.errors import UsageError  # noqa: E402
from torchlab.runtime.config_file import read_config_file  # noqa: E402

GOOD, BAD = 0.03, 3e-5  # a learning rate that learns in 3 epochs, and one that barely moves
TINY = {"device": "cpu", "search_only": True}


def states(storage, name="digits"):  # the study is named for the task (digit-mlp is its old name)
    """Trial number -> state in the study kept in `storage` (a journal file)."""
    from torchlab.search.storage import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(str(storage)))
    return {t.number: t.state.name for t in study.get_trials() if not t.user_attrs.get("surplus")}


@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory):
    """Two good trials, then a planted bad one whose val_loss at epoch 2 is far above theirs."""
    out = tmp_path_factory.mktemp("study")
    result = torchlab.tune(
        "digit-mlp",
        trials=3,
        epochs=3,
        out=out,
        search=[f"lr={GOOD},{BAD}"],
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
        enqueue=[{"lr": GOOD}, {"lr": GOOD}, {"lr": BAD}],
        **TINY,
    )
    return out, result


def test_a_trial_whose_curve_is_worse_than_the_median_is_pruned_and_keeps_its_history(pruned_study):
    out, result = pruned_study
    assert result.states == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 0}
    folder = out / "trials" / "0002"
    status = json.loads((folder / "trial.json").read_text())
    assert status["state"] == "PRUNED" and status["params"] == {"lr": BAD} and status["pruned_at_epoch"] == 2
    with open(folder / "history.csv") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]  # stopped after epoch 2, kept
    assert (folder / "last.pt").is_file() and (folder / "config.toml").is_file()
    for number in ("0000", "0001"):
        assert json.loads((out / "trials" / number / "trial.json").read_text())["state"] == "COMPLETE"


def test_the_best_config_the_command_the_table_and_the_figures(pruned_study):
    out, result = pruned_study
    assert result.best_params == {"lr": GOOD} and result.best_trial in (0, 1)
    best = read_config_file(result.best_config)
    assert best.task == "digits" and best.values["lr"] == GOOD and best.values["epochs"] == 3
    assert result.command.startswith(f"torchlab train digits --config {out / 'best.toml'}")
    with open(result.table) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "PRUNED"] and rows[2]["epochs_run"] == "2"
    assert float(rows[result.best_trial]["value"]) == pytest.approx(result.best_value)
    assert sorted(p.name for p in result.figures) == ["history.png", "importance.png", "intermediate.png"]
    for path in result.figures:
        image = plt.imread(path)
        assert path.stat().st_size > 5000 and image.shape[0] > 200 and image[..., :3].std() > 0.05, path


def test_a_study_folder_is_not_reused_without_resume(pruned_study):
    out, _ = pruned_study
    with pytest.raises(UsageError, match="already holds a study.*--resume"):
        torchlab.tune("digit-mlp", trials=3, epochs=3, out=out, search=[f"lr={GOOD},{BAD}"], **TINY)


def test_two_processes_on_one_storage_run_exactly_the_trials_asked(tmp_path):
    storage = tmp_path / "shared.journal"
    args = [
        "tune",
        "digit-mlp",
        "--trials",
        "4",
        "--epochs",
        "1",
        "--search-only",
        "--search",
        "lr=0.01:0.1:log",
        "--pruner",
        "none",
        "--no-figures",  # drawn by the test above; here the count of trials is what is checked
        "--device",
        "cpu",
        "--storage",
        str(storage),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "torchlab", *args, "--out", str(tmp_path / name), "--seed", str(seed)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed, name in enumerate(("a", "b"))
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(states(storage).values()) == ["COMPLETE"] * 4
    folders = [f for name in ("a", "b") for f in sorted((tmp_path / name / "trials").iterdir())]
    assert sorted(int(f.name) for f in folders) == sorted(states(storage))  # none twice, none lost
    for folder in folders:
        assert json.loads((folder / "trial.json").read_text())["state"] == "COMPLETE"
        assert all((folder / name).is_file() for name in ("best.pt", "last.pt", "history.csv", "config.toml"))
    assert "4 complete, 0 pruned, 0 failed" in outputs[0][0] + outputs[1][0]


KILLED = textwrap.dedent("""
    import os, signal, sys
    import torchlab

    def kill_in_second_trial(trainer, row):
        if trainer.checkpoint_dir.name == "0001" and row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)   # mid-trial: epoch 1 of 2 written, the trial still RUNNING

    torchlab.tune("digit-mlp", trials=3, epochs=2, out=sys.argv[1], search=["lr=0.01:0.1:log"], search_only=True,
                  pruner="none", device="cpu", callbacks=[kill_in_second_trial], figures=False)
""")


def test_a_study_killed_mid_trial_resumes_to_its_trials_with_that_trial_failed(tmp_path):
    out = tmp_path / "study"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, str(out)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == -9, proc.stderr
    storage = str(out / "study.journal")
    assert states(storage) == {0: "COMPLETE", 1: "RUNNING"}
    result = torchlab.tune(
        "digit-mlp",
        trials=3,
        epochs=2,
        out=out,
        search=["lr=0.01:0.1:log"],
        pruner="none",
        resume=True,
        **TINY,
        figures=False,  # the figures have their own test
    )
    assert result.failed_orphans == [1]
    assert states(storage) == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE", 3: "COMPLETE"}
    status = json.loads((out / "trials" / "0001" / "trial.json").read_text())
    assert status["state"] == "FAILED" and "process ended" in status["message"]
    assert result.states == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 1}
    assert result.figures == [] and not (out / "figures").exists()  # figures=False draws none
