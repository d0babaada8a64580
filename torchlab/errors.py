"""Errors a user can cause. The CLI prints them in one line and exits with status 2."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class TorchlabError(Exception):
    """Base class: something the user can fix (a path, a flag, a file). The message says how."""


class UsageError(TorchlabError):
    """A command-line value or argument combination that cannot work (negative epochs, ...)."""


class DeviceError(TorchlabError):
    """The requested device is not available on this machine."""


class DataError(TorchlabError):
    """A data file is missing, malformed or holds values the task cannot use."""


class CheckpointError(TorchlabError):
    """A file is not a readable torchlab checkpoint, or does not fit the model."""


@dataclass(frozen=True)
class FieldName:
    """A config field named inside a message ("lr"); the CLI writes it as its flag ("--lr")."""

    field: str


class TrainingError(TorchlabError):
    """Training cannot go on (for example the loss became NaN or infinite).

    The message is text and FieldName parts: str() names each field as the config spells it (lr),
    `worded(flag_name)` by its command-line flag (--lr); `fields` lists them in order.
    """

    def __init__(self, *parts: str | FieldName) -> None:
        self.parts = parts
        super().__init__(self.worded())

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(part.field for part in self.parts if isinstance(part, FieldName))

    def worded(self, name: Callable[[str], str] = str) -> str:
        """The message with each field written as `name(field)`."""
        return "".join(name(part.field) if isinstance(part, FieldName) else part for part in self.parts)


class NonFiniteLoss(TrainingError):
    """`quantity` ("train_loss") became `value` (NaN or infinite) in `epoch` (1-based) at learning rate `lr`.

    `advice` is what to change (text and FieldName parts); `checkpoint` the last last.pt written, if any. The
    message calls it "the last good checkpoint" only when `checked` (its digest and finite weights were verified,
    see torchlab.engine.checkpoint.sound_checkpoint): a loss can stay finite for an epoch whose last step made
    the weights NaN, and that epoch's last.pt holds them.
    """

    def __init__(
        self,
        quantity: str,
        value: float,
        epoch: int,
        lr: float,
        advice: tuple[str | FieldName, ...],
        checkpoint: Path | None = None,
        checked: bool = False,
    ) -> None:
        self.quantity, self.value, self.epoch, self.lr = quantity, value, epoch, lr
        self.advice, self.checkpoint, self.checked = tuple(advice), checkpoint, checked
        said = "the last good checkpoint is" if checked else "the last checkpoint written (not checked) is"
        where = () if checkpoint is None else (f"; {said} {checkpoint}",)
        super().__init__(f"{quantity} became {value} in epoch {epoch} (lr {lr:g}); ", *self.advice, *where)

    def with_advice(self, *advice: str | FieldName) -> NonFiniteLoss:
        """The same error with other advice, from a caller that knows better what broke the loss."""
        return NonFiniteLoss(self.quantity, self.value, self.epoch, self.lr, advice, self.checkpoint, self.checked)

    def with_checkpoint(self, checkpoint: Path | None, checked: bool) -> NonFiniteLoss:
        """The same error naming `checkpoint` (None: none), as a good one when `checked`."""
        return NonFiniteLoss(self.quantity, self.value, self.epoch, self.lr, self.advice, checkpoint, checked)


class LostPeer(TorchlabError):
    """Another process of a torchrun run died or went silent (a lost worker or node): this one cannot go on."""


class ExportError(TorchlabError):
    """A model could not be exported, or the exported file does not reproduce the checkpoint's outputs."""


class Note(UserWarning):
    """Something a user should know that does not stop the command (the CLI shows it as one line)."""
