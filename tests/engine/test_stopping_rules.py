"""The early-stopping rules Keras and Lightning users know, on value sequences written out by hand:
Keras's baseline and start_from_epoch, Lightning's stopping_threshold, divergence_threshold and
check_finite. For each: the epoch the run stops at, the epoch whose weights it keeps, and that the
state in last.pt makes a resumed run stop exactly where the uninterrupted one does."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from torchlab import EarlyStopping, Trainer
from torchlab.config import TrainConfig, with_overrides
from torchlab.data import TensorBatcher
from torchlab.engine.checkpoint import read_checkpoint
from torchlab.engine.metrics import Metric
from torchlab.errors import UsageError

NAN, INF = math.nan, math.inf


def feed(es: EarlyStopping, values: list[float]) -> tuple[int | None, list[bool]]:
    """Epoch by epoch until it stops: (the 0-based stop epoch or None, each epoch's "new best")."""
    improved = []
    for epoch, value in enumerate(values):
        improved.append(es.update(value, epoch))
        if es.should_stop:
            return epoch, improved
    return None, improved


# ------------------------------------------------------------------- Keras
def test_keras_patience_vector_is_unchanged():
    # keras' test_early_stopping_patience: stopped_epoch == max(patience, 1) + 2
    for patience in (0, 1, 2, 3):
        es = EarlyStopping("loss", patience=patience)
        assert feed(es, [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5])[0] == max(patience, 1) + 2
        assert es.stop_reason == "patience" and es.best_epoch == 2


def test_baseline_no_epoch_beats_it_so_the_run_stops_after_patience_epochs_keeping_the_best():
    # keras' test vector: patience 5, baseline 0.5; 5 epochs run, the weights of epoch index 2 (0.7) are kept
    es = EarlyStopping("val_loss", patience=5, baseline=0.5)
    stop, improved = feed(es, [0.9, 0.8, 0.7, 0.71, 0.72, 0.73])
    assert (stop, es.best_epoch, es.best, es.stop_reason) == (4, 2, 0.7, "patience")
    assert improved == [True, True, True, False, False]  # the best is tracked below the baseline too
    assert "has not beaten the baseline 0.5 in 5 epochs" in es.stop_message(0.72)
    # without a baseline the same values would not stop the run until three epochs without improvement
    assert feed(EarlyStopping("val_loss", patience=5), [0.9, 0.8, 0.7, 0.71, 0.72, 0.73])[0] is None


def test_baseline_counts_improving_epochs_that_stay_short_of_it():
    # every epoch improves, none beats 0.5: patience 2 ends the run at the second epoch (index 1)
    es = EarlyStopping("val_loss", patience=2, baseline=0.5)
    assert feed(es, [0.9, 0.8, 0.7, 0.6])[0] == 1 and es.best_epoch == 1 and es.wait == 2
    # max mode, and min_delta applies to the baseline as to the best: 0.805 does not beat 0.8 by 0.01
    es = EarlyStopping("val_accuracy", "max", patience=2, min_delta=0.01, baseline=0.8)
    assert feed(es, [0.5, 0.805, 0.9, 0.85])[0] == 1 and es.best_epoch == 1 and es.best == 0.805
    es = EarlyStopping("val_accuracy", "max", patience=2, min_delta=0.01, baseline=0.8)
    assert feed(es, [0.5, 0.82, 0.85, 0.8, 0.8])[0] == 4 and es.best_epoch == 2  # 0.82 beats it: the count restarts


def test_beating_the_baseline_restarts_the_count():
    es = EarlyStopping("val_loss", patience=2, baseline=0.5)
    stop, improved = feed(es, [0.9, 0.45, 0.44, 0.6, 0.6, 0.6])
    assert stop == 4 and improved == [True, True, True, False, False] and es.best_epoch == 2
    # patience 0: never at the run's first epoch (Keras's `epoch > 0`), then at the first that misses it
    es = EarlyStopping("val_loss", patience=0, baseline=0.5)
    assert feed(es, [0.9, 0.8, 0.7])[0] == 1


def test_start_from_epoch_neither_counts_nor_keeps_the_warm_up_epochs():
    values = [0.1, 0.2, 1.0, 1.1, 0.9, 1.2, 1.3]
    # no warm-up: 0.1 is the best, and 0.2 already ends the run
    assert feed(EarlyStopping("val_loss", patience=1), values)[0] == 1
    es = EarlyStopping("val_loss", patience=2, start_from_epoch=2)
    stop, improved = feed(es, values)
    assert improved[:3] == [False, False, True]  # the first looked-at epoch is the first best
    assert (stop, es.best_epoch, es.best) == (6, 4, 0.9)  # 0.1 of the warm-up is never the best
    es = EarlyStopping("val_loss", patience=1, start_from_epoch=3)
    for epoch, value in enumerate([5.0, 6.0, 7.0]):  # rising values: ignored while warming up
        es.update(value, epoch)
        assert es.wait == 0 and es.best_epoch == -1 and not es.should_stop
    assert not es.looks_at(2) and es.looks_at(3)
    # nothing stops a run during the warm-up, not even a threshold or a NaN
    es = EarlyStopping("val_loss", patience=0, start_from_epoch=3, stopping_threshold=1.0, divergence_threshold=9.0)
    assert feed(es, [0.5, NAN, 20.0, 0.5])[0] == 3 and es.stop_reason == "stopping_threshold"
    with pytest.raises(ValueError, match="start_from_epoch"):
        EarlyStopping(start_from_epoch=-1)


# --------------------------------------------------------------- Lightning
def test_stopping_threshold_stops_as_soon_as_the_value_is_better_and_keeps_that_epoch():
    es = EarlyStopping("val_loss", patience=None, stopping_threshold=0.25)
    assert feed(es, [0.5, 0.25, 0.2, 0.1]) == (2, [True, True, True])  # 0.25 itself is not below 0.25
    assert (es.best_epoch, es.stop_reason) == (2, "stopping_threshold")
    assert es.stop_message(0.2) == (
        "early stopping at epoch 3: val_loss = 0.2 reached the stopping threshold (below 0.25; best 0.2 at epoch 3)"
    )
    # min_delta does not hold the threshold epoch back: its weights are the ones kept
    es = EarlyStopping("val_loss", patience=None, min_delta=0.05, stopping_threshold=0.295)
    assert feed(es, [0.3, 0.29]) == (1, [True, True]) and es.best_epoch == 1
    es = EarlyStopping("val_accuracy", "max", patience=None, stopping_threshold=0.8)
    assert feed(es, [0.5, 0.8, 0.9])[0] == 2 and es.best_epoch == 2


def test_stopping_threshold_after_a_better_best_keeps_the_better_one():
    # a resumed run with a new threshold: the epoch that reaches it is not better than the earlier best
    es = EarlyStopping("val_loss", patience=None)
    feed(es, [0.3, 0.1, 0.4])
    es.stopping_threshold = 0.2
    assert es.update(0.15, 3) is False and es.should_stop and es.best_epoch == 1


def test_divergence_threshold_stops_at_once_and_keeps_the_epoch_before():
    es = EarlyStopping("val_loss", patience=None, divergence_threshold=2.0)
    assert feed(es, [1.0, 0.8, 2.0, 5.0, 0.1]) == (3, [True, True, False, False])  # 2.0 itself is no divergence
    assert (es.best_epoch, es.best, es.stop_reason) == (1, 0.8, "divergence_threshold")
    assert "passed the divergence threshold (above 2; best 0.8 at epoch 2)" in es.stop_message(5.0)
    es = EarlyStopping("val_accuracy", "max", patience=None, divergence_threshold=0.1)
    assert feed(es, [0.5, 0.6, 0.05])[0] == 2 and es.best_epoch == 1
    es = EarlyStopping("val_loss", patience=None, divergence_threshold=2.0)  # hopeless from the start
    assert feed(es, [3.0]) == (0, [False]) and es.best_epoch == -1 and "no best epoch" in es.stop_message(3.0)


def test_check_finite_stops_on_nan_or_inf_and_off_counts_them_as_no_improvement():
    for bad in (NAN, INF, -INF):
        es = EarlyStopping("val_rmse", patience=None)
        assert feed(es, [1.0, 0.5, bad, 0.1]) == (2, [True, True, False])
        assert (es.best_epoch, es.best, es.stop_reason) == (1, 0.5, "not_finite")
        assert "is not finite (best 0.5 at epoch 2)" in es.stop_message(bad)
    es = EarlyStopping("val_rmse", patience=3, check_finite=False)
    assert feed(es, [NAN, 1.0, NAN, 0.5]) == (None, [False, True, False, True])
    assert es.best == 0.5 and es.best_epoch == 3 and es.wait == 0
    assert feed(EarlyStopping("val_rmse", patience=None), [NAN]) == (0, [False])


def test_the_rules_state_round_trips_with_its_reason():
    es = EarlyStopping("val_loss", patience=None, divergence_threshold=2.0)
    feed(es, [1.0, 3.0])
    clone = EarlyStopping("val_loss", patience=None, divergence_threshold=2.0)
    clone.load_state_dict(es.state_dict())
    assert (
        clone.state_dict()
        == es.state_dict()
        == {"best": 1.0, "best_epoch": 0, "wait": 0, "stopped_epoch": 1, "stop_reason": "divergence_threshold"}
    )
    assert clone.stop_message(3.0) == es.stop_message(3.0)


def test_config_fields_reach_the_early_stopping():
    cfg = with_overrides(
        TrainConfig(),
        patience=4,
        min_delta=0.1,
        baseline=0.5,
        start_from_epoch=2,
        stopping_threshold=0.01,
        divergence_threshold=9.0,
        check_finite=False,
    )
    es = EarlyStopping.from_config(cfg, "val_rmse", "max", restore_best_weights=False)
    assert (
        es.monitor,
        es.mode,
        es.patience,
        es.min_delta,
        es.restore_best_weights,
        es.baseline,
        es.start_from_epoch,
        es.stopping_threshold,
        es.divergence_threshold,
        es.check_finite,
    ) == ("val_rmse", "max", 4, 0.1, False, 0.5, 2, 0.01, 9.0, False)
    default = EarlyStopping.from_config(TrainConfig(), "val_loss")
    assert (
        default.baseline,
        default.start_from_epoch,
        default.stopping_threshold,
        default.divergence_threshold,
        default.check_finite,
        default.restore_best_weights,
    ) == (None, 0, None, None, True, True)
    for name, bad, want in [
        ("start_from_epoch", -1, "a whole number >= 0"),
        ("baseline", NAN, "a finite number"),
        ("stopping_threshold", INF, "a finite number"),
        ("divergence_threshold", "high", "a finite number"),
    ]:
        with pytest.raises(UsageError, match=f"^--{name.replace('_', '-')} must be {want}, got "):
            with_overrides(TrainConfig(), **{name: bad})


# ------------------------------------------------------- in the Trainer, with resume
class Scripted(Metric):
    """A validation metric that follows a script, one value per finished epoch."""

    mode = "min"

    def __init__(self, script):
        self.script, self.trainer = script, None

    def batch_stats(self, output, target, *rest):
        return torch.tensor(0.0), torch.tensor(1.0)

    def compute(self, total, count):
        return self.script[len(self.trainer.history)]


class Crash(Exception):
    pass


def run(out, script, crash_after=None, resume=False, **rules):
    """A small regression net whose val_s follows `script`; returns (final weights, result, weights per epoch)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1))
    metric = Scripted(script)
    seen = []

    def callback(trainer, row):
        seen.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        if crash_after is not None and row["epoch"] == crash_after:
            raise Crash

    trainer = Trainer(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), lr=0.05),
        metrics={"s": metric},
        train_metrics=False,
        epochs=len(script),
        checkpoint_dir=out,
        progress=False,
        early_stopping=EarlyStopping("val_s", **rules),
        callbacks=[callback],
    )
    metric.trainer = trainer
    batches = TensorBatcher((x, y), 8, shuffle=True, seed=3)
    if crash_after is not None:
        with pytest.raises(Crash):
            trainer.fit(batches, TensorBatcher((x, y), 12))
        return None
    result = trainer.fit(batches, TensorBatcher((x, y), 12), resume=resume)
    return model.state_dict(), result, seen


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "rules, script, stop, kept, reason",
    [
        ({"patience": None, "stopping_threshold": 0.25}, [0.9, 0.5, 0.6, 0.2, 0.1, 0.1], 4, 4, "stopping_threshold"),
        ({"patience": None, "divergence_threshold": 1.0}, [0.9, 0.5, 0.6, 1.5, 0.1, 0.1], 4, 2, "divergence_threshold"),
        ({"patience": None}, [0.9, 0.5, 0.6, NAN, 0.1, 0.1], 4, 2, "not_finite"),
        ({"patience": 3, "baseline": 0.1}, [0.9, 0.5, 0.6, 0.55, 0.52, 0.3], 3, 2, "patience"),
        ({"patience": 1, "start_from_epoch": 2}, [0.1, 0.2, 0.6, 0.5, 0.55, 0.4], 5, 4, "patience"),
    ],
)
def test_each_rule_stops_at_its_epoch_keeps_the_right_weights_and_resumes_exactly(
    tmp_path, rules, script, stop, kept, reason
):
    """stop, kept: 1-based epochs. The run after a crash at epoch 2 and a resume ends the same way."""
    weights, result, seen = run(tmp_path / "a", script, **rules)
    assert (result.epochs_run, result.stopped_early, result.stop_reason) == (stop, True, reason)
    assert result.best_epoch == kept and result.stop_message.startswith("early stopping")
    assert same(weights, seen[kept - 1])  # restore_best_weights: epoch `kept`'s weights
    assert same(weights, seen[-1]) == (kept == stop)
    assert read_checkpoint(tmp_path / "a" / "best.pt")["epoch"] == kept
    last = read_checkpoint(tmp_path / "a" / "last.pt")
    assert last["epoch"] == stop and last["early_stopping"]["stop_reason"] == reason
    run(tmp_path / "b", script, crash_after=2, **rules)
    resumed_weights, resumed, _ = run(tmp_path / "b", script, resume=True, **rules)
    assert same(weights, resumed_weights)
    assert (resumed.epochs_run, resumed.best_epoch, resumed.stop_reason) == (stop, kept, reason)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["early_stopping"] == last["early_stopping"]
    assert same(
        read_checkpoint(tmp_path / "b" / "best.pt")["state_dict"],
        read_checkpoint(tmp_path / "a" / "best.pt")["state_dict"],
    )


def test_a_warm_up_longer_than_the_run_leaves_the_last_weights_in_best_pt(tmp_path):
    weights, result, seen = run(tmp_path / "a", [0.5, 0.1, 0.9], patience=1, start_from_epoch=5)
    assert result.best_epoch == 0 and not result.stopped_early and same(weights, seen[-1])
    best = read_checkpoint(tmp_path / "a" / "best.pt")
    assert best["epoch"] == 3 and same(best["state_dict"], seen[-1])
    # resumed in the warm-up: best.pt's last weights are not taken for a best
    run(tmp_path / "b", [0.5, 0.1, 0.9], crash_after=1, patience=1, start_from_epoch=5)
    resumed_weights, resumed, _ = run(tmp_path / "b", [0.5, 0.1, 0.9], resume=True, patience=1, start_from_epoch=5)
    assert same(resumed_weights, weights) and resumed.best_epoch == 0
