"""Callbacks reach the Trainer from torchlab.train, and an exception in one ends the run with its files kept."""

from __future__ import annotations

import pytest

import torchlab
from torchlab.engine.checkpoint import read_checkpoint


class Stop(Exception):
    pass


class Recorder(torchlab.Callback):
    def __init__(self, stop_after: int | None = None) -> None:
        self.rows: list[dict[str, float]] = []
        self.stop_after = stop_after

    def on_epoch_end(self, trainer, row):
        self.rows.append(dict(row))
        if self.stop_after is not None and len(self.rows) == self.stop_after:
            raise Stop


def test_train_hands_callbacks_to_the_trainer_and_a_function_counts_as_on_epoch_end(tmp_path):
    recorder, seen = Recorder(), []
    result = torchlab.train(
        "digit-mlp",
        out=tmp_path / "r",
        device="cpu",
        progress=False,
        figures=False,
        epochs=3,
        callbacks=[recorder, lambda trainer, row: seen.append(row["epoch"])],
    )
    assert [row["epoch"] for row in recorder.rows] == [1, 2, 3] == seen
    assert recorder.rows[-1]["val_loss"] == result.history[-1]["val_loss"]


def test_an_exception_in_a_callback_ends_the_run_and_keeps_what_was_written(tmp_path):
    with pytest.raises(Stop):
        torchlab.train(
            "digit-mlp",
            out=tmp_path / "r",
            device="cpu",
            progress=False,
            figures=False,
            epochs=5,
            callbacks=[Recorder(stop_after=2)],
        )
    assert read_checkpoint(tmp_path / "r" / "last.pt")["epoch"] == 2
    assert len((tmp_path / "r" / "history.csv").read_text().splitlines()) == 3  # header and two epochs
