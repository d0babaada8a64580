"""The baseline's stop message at its edges: a best at the very first epoch that beat the baseline gets
patience's words; a best that beat the baseline by less than min_delta has not beaten it."""

from __future__ import annotations

import pytest

from torchlab import EarlyStopping


def stopped(values: list[float], **rule) -> tuple[EarlyStopping, float]:
    tracker = EarlyStopping(**rule)
    for epoch, value in enumerate(values):
        tracker.update(value, epoch)
        if tracker.should_stop:
            return tracker, value
    raise AssertionError(f"{rule} did not stop on {values}")


@pytest.mark.parametrize(
    "values, rule, message",
    [
        (
            [0.2, 0.25, 0.26],
            dict(monitor="val_loss", patience=2, baseline=0.3),  # beaten at the first epoch
            "early stopping: val_loss has not improved since epoch 1 (best 0.2)",
        ),
        (
            [0.28, 0.29],
            dict(monitor="val_loss", patience=2, baseline=0.3, min_delta=0.05),  # under it, not by min_delta
            "early stopping at epoch 2: val_loss has not beaten the baseline 0.3 in 2 epochs (best 0.28 at epoch 1)",
        ),
        (
            [0.8, 0.75],
            dict(monitor="val_accuracy", mode="max", patience=2, baseline=0.7, min_delta=0.15),
            "early stopping at epoch 2: val_accuracy has not beaten the baseline 0.7 in 2 epochs (best 0.8 at epoch 1)",
        ),
    ],
)
def test_the_baseline_message_at_its_edges(values, rule, message):
    tracker, value = stopped(values, **rule)
    assert tracker.stop_message(value) == message


def test_a_rank_that_follows_rank_0s_stop_knows_the_epoch_but_not_the_rule():
    """Under torchrun every rank adopts rank 0's decision; the rule that made it is rank 0's to say (None here)."""
    es = EarlyStopping("val_loss", patience=3)
    es.follow(True, 4)
    assert (es.should_stop, es.stopped_epoch, es.stop_reason) == (True, 4, None)
    es.follow(False, 5)  # rank 0 goes on: so does this rank, whatever it thought
    assert (es.should_stop, es.stopped_epoch, es.stop_reason) == (False, None, None)
