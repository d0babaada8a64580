"""The `torchlab` command: parse, dispatch to a sub-command, print.

Each sub-command is a module of torchlab/cli/ with `register(subparsers)`, listed in
`build_parser`. Errors a user can cause (TorchlabError) are printed in one line on stderr
with exit status 2; there is no traceback for them. The config fields a TrainingError names
are written there as flags (lr as --lr).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator

from torchlab.config import flag_name
from torchlab.errors import TorchlabError, TrainingError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and still exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(with_tasks: bool = True) -> argparse.ArgumentParser:
    """The whole command line. with_tasks=False leaves out the per-task `train` parsers (not needed to answer)."""
    from torchlab import __version__
    from torchlab.cli import (
        compare,
        evaluate,
        export,
        gradcheck,
        lessons,
        models,
        predict,
        runs,
        train,
        tune,
    )

    parser = OneLineParser(
        prog="torchlab",
        description="Train, check and run the torchlab models (digits MLP, ring net, MNIST CNNs, keypoints, ...).",
    )
    parser.add_argument("--version", action="version", version=f"torchlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    models.register_models(sub)
    train.register(sub, with_tasks=with_tasks)
    tune.register(sub, with_tasks=with_tasks)
    evaluate.register(sub)
    predict.register(sub)
    models.register_summary(sub)
    for module in (export, gradcheck, runs, compare, lessons):
        module.register(sub)
    return parser


def _asks_for_train(argv: list[str]) -> bool:
    """Whether the command is `train` or `tune`: only then are the task modules imported to parse."""
    words = [a for a in argv if not a.startswith("-")]
    return bool(words) and words[0] in ("train", "tune")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and `python -m torchlab`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if (
        _asks_for_train(argv)
        and argv[:1] == ["train"]
        and any(a == "--config" or a.startswith("--config=") for a in argv)
    ):
        from torchlab.cli.flags import task_from_config_file

        try:
            argv = task_from_config_file(argv)
        except TorchlabError as exc:
            return _fail("train", str(exc))
    parser = build_parser(with_tasks=_asks_for_train(argv))
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the sub-command whose --help lists what it does take
        where = " ".join(["torchlab", args.command] + ([args.task] if getattr(args, "task", None) else []))
        parser.exit(2, f"{where}: error: unrecognized arguments: {' '.join(unknown)} (see {where} --help)\n")
    finished = False
    try:
        with _notes_on_one_line(args.command):
            status = args.func(args)
        finished = True
    except TorchlabError as exc:
        return _fail(args.command, in_flags(exc))
    except OSError as exc:  # a path the user gave: missing, not a folder, no permission, disk full
        from torchlab.reporting.messages import os_error_message

        return _fail(args.command, os_error_message(exc))
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and not _is_out_of_memory(exc):
            raise
        return _fail(args.command, "out of memory; try a smaller --batch-size or model, or another --device")
    except KeyboardInterrupt:
        print("torchlab: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed = sys.modules.get(
            "torchlab.runtime.distributed"
        )  # never imported: no group to leave (and no torch)
        if distributed is not None:
            distributed.teardown(synchronize=finished)
    return int(status or 0)


def in_flags(exc: TorchlabError) -> str:
    """The message of a user error in the CLI's words: the config fields a TrainingError names become flags (--lr)."""
    if isinstance(exc, TrainingError):
        return exc.worded(flag_name)
    return str(exc)


def _fail(command: str, message: str) -> int:
    """Print a user error in one line on stderr; the exit status is 2."""
    message = " ".join(message.split())
    print(f"torchlab {command}: error: {message}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _notes_on_one_line(command: str) -> Iterator[None]:
    """Show the library's notes (torchlab.errors.Note warnings) as `torchlab CMD: note: ...` lines on stderr."""
    from torchlab.errors import Note

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, Note):
            print(f"torchlab {command}: note: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", Note)
        warnings.showwarning = show
        yield


def _is_out_of_memory(exc: RuntimeError) -> bool:
    text = str(exc)
    return (
        "out of memory" in text.lower() or "can't allocate memory" in text or "OutOfMemoryError" in type(exc).__name__
    )


if __name__ == "__main__":
    sys.exit(main())
