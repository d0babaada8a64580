"""The mnist `fast` recipe: its settings, and a run on synthetic digits whose checkpoint evaluates,
predicts and exports (torchlab train mnist --recipe fast)."""

from __future__ import annotations

import warnings

import pytest
import torch

import torchlab
from mnist_files import write_mnist
from torchlab.export import export


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine two OpenMP threads wait on each other for ages."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_fast_recipe_is_one_epoch_of_mnist_fast_with_adam():
    cfg = torchlab.get_recipe("mnist", "fast")
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr) == ("mnist-fast", 1, 256, 1e-2)
    assert (cfg.optimizer, cfg.weight_decay, cfg.schedule, cfg.warmup, cfg.beta2) == ("adam", 0.0, "onecycle", 0.2, 0.9)
    assert (cfg.val_size, cfg.augment, cfg.label_smoothing) == (None, False, 0.1)  # 5,000 of 60,000 held out
    assert "fast" in torchlab.recipe_names("mnist")
    long = torchlab.get_recipe("mnist", "long")  # unchanged by the new recipe
    assert (long.model, long.epochs, long.channels, long.lr) == ("mnist-cnn", 12, (32, 64, 128), 1e-2)


def test_fast_run_evaluates_predicts_and_exports(tmp_path):
    root = write_mnist(tmp_path / "mnist", n_train=1100, n_test=200)
    out = tmp_path / "run"
    # the recipe's one epoch of batches of 256 is only 4 steps on 1,000 images: smaller batches, three epochs
    result = torchlab.train(
        "mnist",
        "fast",
        data_dir=str(root),
        epochs=3,
        batch_size=32,
        val_size=100,
        out=out,
        device="cpu",
        progress=False,
        figures=False,
    )
    assert result.summary["model"] == "mnist-fast" and result.summary["recipe"] == "fast"
    assert result.summary["test_accuracy"] >= 0.95

    model, meta = torchlab.load(out / "best.pt")
    assert type(model).__name__ == "MnistFastCNN" and meta["model"]["kwargs"] == {"classes": 10}
    assert meta["config"]["optimizer"] == "adam" and meta["config"]["model"] == "mnist-fast"
    metrics = torchlab.evaluate(out / "best.pt", data_dir=str(root), device="cpu")
    assert metrics["accuracy"] == pytest.approx(result.summary["test_accuracy"], abs=1e-4)
    record = torchlab.predict(out / "best.pt", index=[7], data_dir=str(root), device="cpu")[0]
    assert record["prediction"] == record["true"] == "7"

    path = export(out / "best.pt", fmt="torchscript", out=tmp_path / "fast.torchscript.pt", data_dir=str(root))
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(path))
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)


def test_beta2_reaches_adam_and_survives_the_one_cycle_steps():
    from torchlab.models import build_model
    from torchlab.tasks.mnist.train import make_mnist_optimizer

    cfg = torchlab.get_recipe("mnist", "fast", epochs=2)
    optimizer, scheduler, interval = make_mnist_optimizer(build_model("mnist-fast"), cfg, steps_per_epoch=10)
    assert isinstance(optimizer, torch.optim.Adam) and interval == "batch"
    for _ in range(7):  # one-cycle moves beta1 (its momentum cycle) and leaves beta2 alone
        optimizer.step()
        scheduler.step()
    beta1, beta2 = optimizer.param_groups[0]["betas"]
    assert beta2 == 0.9 and 0.85 <= beta1 < 0.95
    plain, _, _ = make_mnist_optimizer(build_model("mnist-fast"), torchlab.get_recipe("mnist"), 10)
    assert plain.param_groups[0]["betas"][1] == 0.999  # no beta2 in the recipe: torch's own


def test_beta2_is_refused_for_sgd():
    from torchlab.errors import UsageError

    with pytest.raises(UsageError, match="--beta2 is Adam's and AdamW's"):
        torchlab.get_recipe("mnist", "fast", optimizer="sgd")
    with pytest.raises(UsageError, match="--beta2 must be in"):
        torchlab.get_recipe("mnist", "fast", beta2=1.0)
