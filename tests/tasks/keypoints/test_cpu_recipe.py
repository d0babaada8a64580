"""keypoint-net's CPU recipe: chosen when a run on the CPU names no recipe, said in a note and in --help."""

from __future__ import annotations

import warnings

import pytest

import torchlab
from torchlab.cli.main import main
from torchlab.errors import Note

TINY = {
    "device": "cpu",
    "figures": False,
    "progress": False,
    "epochs": 1,
    "synthetic": 40,
    "width": 4,
    "batch_size": 16,
}


def test_a_cpu_run_that_names_no_recipe_trains_the_cpu_recipe(tmp_path):
    with pytest.warns(
        Note,
        match=r"keypoint-net on the CPU used its 'cpu' recipe \(the default one with epochs=18, flip=0\.0\); "
        r"--recipe default \(recipe='default'\) trains the full one$",
    ):
        result = torchlab.train("keypoint-net", out=tmp_path / "a", **TINY)
    assert result.recipe == "cpu"
    _, meta = torchlab.load(result.best_checkpoint)
    assert meta["recipe"] == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error", Note)  # naming the recipe: no note
        named = torchlab.train("keypoint-net", "default", out=tmp_path / "b", **TINY)
        other = torchlab.train("digit-mlp", out=tmp_path / "c", device="cpu", figures=False, progress=False, epochs=1)
    assert named.recipe == "default" and other.recipe == "default"


def test_the_cpu_recipe_is_the_default_in_18_epochs_without_flips_and_help_says_when_it_applies(capsys):
    cpu, full = torchlab.get_recipe("keypoint-net", "cpu"), torchlab.get_recipe("keypoint-net")
    assert (cpu.epochs, cpu.flip) == (18, 0.0) and (full.epochs, full.flip) == (100, 0.5)
    same = lambda cfg: {k: v for k, v in vars(cfg).items() if k not in ("epochs", "flip")}  # noqa: E731
    assert same(cpu) == same(full)
    assert "cpu" not in torchlab.recipe_names("keypoint-cnn")
    with pytest.raises(SystemExit):
        main(["train", "keypoint-net", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default: default, or cpu on a CPU" in out and "(default: 100; seed: 20; cpu: 18)" in out
