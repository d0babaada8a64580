"""Errors a user can cause. The CLI prints them in one line and exits with status 2."""

from __future__ import annotations


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


class TrainingError(TorchlabError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


class ExportError(TorchlabError):
    """A model could not be exported, or the exported file does not reproduce the checkpoint's outputs."""


class Note(UserWarning):
    """Something a user should know that does not stop the command (the CLI shows it as one line)."""
