"""What the summary's `stopped:` line says for each early-stopping rule: the epoch, the monitored value,
the threshold or baseline, and the best epoch kept (the words a user reads after a run ends early)."""

from __future__ import annotations

import math

import pytest

from torchlab import EarlyStopping


def stopped(values: list[float], **rule) -> tuple[EarlyStopping, float]:
    """Feed `values` epoch by epoch until the rule stops; (the tracker, the stopping epoch's value)."""
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
            [0.5, 0.4, math.nan],
            dict(monitor="val_loss", patience=5),
            "early stopping at epoch 3: val_loss = nan is not finite (best 0.4 at epoch 2)",
        ),
        (
            [math.inf],
            dict(monitor="val_loss", patience=5),
            "early stopping at epoch 1: val_loss = inf is not finite (no best epoch)",
        ),
        (
            [0.5, 0.2],
            dict(monitor="val_loss", patience=5, stopping_threshold=0.25),
            "early stopping at epoch 2: val_loss = 0.2 reached the stopping threshold "
            "(below 0.25; best 0.2 at epoch 2)",
        ),
        (
            [0.5, 0.95],
            dict(monitor="val_accuracy", mode="max", patience=5, stopping_threshold=0.9),
            "early stopping at epoch 2: val_accuracy = 0.95 reached the stopping threshold "
            "(above 0.9; best 0.95 at epoch 2)",
        ),
        (
            [0.5, 0.4, 3.5],
            dict(monitor="val_loss", patience=5, divergence_threshold=3.0),
            "early stopping at epoch 3: val_loss = 3.5 passed the divergence threshold (above 3; best 0.4 at epoch 2)",
        ),
        (
            [0.5, 0.05],
            dict(monitor="val_accuracy", mode="max", patience=5, divergence_threshold=0.1),
            "early stopping at epoch 2: val_accuracy = 0.05 passed the divergence threshold "
            "(below 0.1; best 0.5 at epoch 1)",
        ),
        (
            [0.5, 0.4, 0.35],
            dict(monitor="val_loss", patience=2, baseline=0.3),
            "early stopping at epoch 2: val_loss has not beaten the baseline 0.3 in 2 epochs (best 0.4 at epoch 2)",
        ),
        (
            [0.5, 0.2, 0.25, 0.26],
            dict(monitor="val_loss", patience=2, baseline=0.3),  # beaten: patience's words
            "early stopping: val_loss has not improved since epoch 2 (best 0.2)",
        ),
        (
            [0.5, 0.6, 0.7],
            dict(monitor="val_loss", patience=2),
            "early stopping: val_loss has not improved since epoch 1 (best 0.5)",
        ),
    ],
)
def test_each_rule_says_why_the_run_stopped(values, rule, message):
    tracker, value = stopped(values, **rule)
    assert tracker.stop_message(value) == message
    without_value = message.replace(f" = {value:.4g}", "") if "early stopping at" in message else message
    assert tracker.stop_message() == without_value  # no value given: the same words without "= value"


def test_a_run_that_has_not_stopped_says_nothing():
    tracker = EarlyStopping("val_loss", patience=2)
    tracker.update(0.5, 0)
    assert tracker.stop_message(0.5) == ""
