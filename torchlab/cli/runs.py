"""`torchlab runs [FOLDER]` lists the training runs under a folder; `torchlab show RUN_DIR` summarizes one.

A run is a folder holding last.pt, best.pt or history.csv (what `torchlab train --out` writes).
Everything shown comes from the checkpoints' metadata (task, recipe, epochs, best value, test
metrics, configuration) or, for a run without checkpoints, from history.csv.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from torchlab.errors import TorchlabError, UsageError

RUN_FILES = ("last.pt", "best.pt", "history.csv")


HELP = "list the training runs under a folder (default: checkpoints) with task, recipe, epochs, best value, date"
DESCRIPTION = (
    "List every run folder (one holding last.pt, best.pt or history.csv) under FOLDER, "
    "one line each: task, recipe, epochs run of the maximum, the best value of the monitored "
    "quantity and its epoch, test metrics, and when the run last wrote. Read from the checkpoints' "
    "metadata; nothing is trained or evaluated."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help=HELP, description=DESCRIPTION)
    p.add_argument("folder", nargs="?", default="checkpoints", help="where to look, recursively (default: checkpoints)")
    p.set_defaults(func=cmd_runs)
    s = sub.add_parser(
        "show",
        help="summarize one run: task, model, recipe, epochs, best and final metrics, config fields, files",
        description="Summarize one training run from its checkpoints' metadata and history: task, model "
        "and its arguments, recipe and config fields, epochs, early stopping, best and last metrics, test "
        "metrics, training time, library versions and the files in the folder.",
    )
    s.add_argument("run", help="a run folder (e.g. checkpoints/digits) or one of its checkpoints")
    s.set_defaults(func=cmd_show)


# ------------------------------------------------------------------------------ reading
@dataclass
class Run:
    """What one run folder says about itself."""

    folder: Path
    task: str = "-"
    recipe: str = "-"
    model: str = "-"
    epoch: int | None = None  # epochs run
    epochs: int | None = None  # the maximum asked for
    best: dict[str, Any] = field(default_factory=dict)  # monitor, mode, value, epoch
    test: dict[str, float] = field(default_factory=dict)
    modified: float = 0.0
    problem: str = ""  # why a file could not be read
    checkpoint: dict[str, Any] = field(default_factory=dict)  # last.pt's (or best.pt's) metadata
    history: list[dict[str, float]] = field(default_factory=list)


def find_runs(root: Path) -> list[Path]:
    """Every folder under `root` (itself included) that holds a run file, sorted by path."""
    if not root.is_dir():
        raise UsageError(
            f"there is no folder {root}; give the folder that holds your runs, or train one first "
            "(torchlab train TASK writes to checkpoints/TASK)"
        )
    found = {path.parent for name in RUN_FILES for path in root.rglob(name) if path.is_file()}
    return sorted(found)


def read_run(folder: Path) -> Run:
    """A Run from last.pt (progress), best.pt (best and test metrics) and history.csv, whichever exist."""
    from torchlab.engine.checkpoint import read_checkpoint

    run = Run(folder)
    files = [folder / name for name in RUN_FILES if (folder / name).is_file()]
    run.modified = max((f.stat().st_mtime for f in files), default=0.0)
    metas: dict[str, dict[str, Any]] = {}
    for name in ("last.pt", "best.pt"):
        if (folder / name).is_file():
            try:
                checkpoint = read_checkpoint(folder / name)
            except TorchlabError as exc:
                run.problem = str(exc)
                continue
            checkpoint.pop("state_dict", None)
            for heavy in ("optimizer", "scheduler", "rng", "early_stopping"):
                checkpoint.pop(heavy, None)
            metas[name] = checkpoint
    meta = metas.get("last.pt") or metas.get("best.pt")
    if meta:
        run.checkpoint = meta
        run.task = str(meta.get("task", "-"))
        run.recipe = str(meta.get("recipe", "-"))
        run.model = str(meta.get("model", {}).get("name", "-"))
        run.epoch, run.epochs = meta.get("epoch"), meta.get("epochs")
        run.best = dict(meta.get("best") or {})
        run.history = list(meta.get("history") or [])
        for source in (metas.get("last.pt", {}), metas.get("best.pt", {})):  # best.pt's test metrics win
            run.test.update({k: v for k, v in (source.get("metrics") or {}).items() if k.startswith("test_")})
    elif (folder / "history.csv").is_file():
        run.history = _read_history(folder / "history.csv")
        run.epoch = len(run.history) or None
        if run.history and "val_loss" in run.history[0]:
            best = min(run.history, key=lambda row: row["val_loss"])
            run.best = {"monitor": "val_loss", "value": best["val_loss"], "epoch": int(best["epoch"])}
    return run


def _read_history(path: Path) -> list[dict[str, float]]:
    try:
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    except (OSError, ValueError, csv.Error):
        return []


# ---------------------------------------------------------------------------- printing
def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _best(run: Run) -> str:
    if "value" not in run.best or not isinstance(run.best.get("value"), (int, float)) or math.isnan(run.best["value"]):
        return "-"
    return f"{run.best.get('monitor', '?')} {_number(float(run.best['value']))} (epoch {run.best.get('epoch', '?')})"


def _epochs(run: Run) -> str:
    if run.epoch is None:
        return "-"
    return f"{run.epoch}/{run.epochs}" if run.epochs else str(run.epoch)


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


def _relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def cmd_runs(args: argparse.Namespace) -> int:
    runs = [read_run(folder) for folder in find_runs(Path(args.folder))]
    if not runs:
        print(
            f"no runs under {args.folder} (a run folder holds last.pt, best.pt or history.csv); "
            "train one with: torchlab train TASK"
        )
        return 0
    header = ("run", "task", "recipe", "epochs", "best", "test", "date")
    rows = [
        (
            _relative(r.folder),
            r.task,
            r.recipe,
            _epochs(r),
            _best(r),
            " ".join(f"{k.removeprefix('test_')} {_number(v)}" for k, v in r.test.items()) or "-",
            _date(r.modified) + (f"  ({r.problem})" if r.problem else ""),
        )
        for r in runs
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    target = Path(args.run)
    folder = target.parent if target.is_file() else target
    if not folder.is_dir() or not any((folder / name).is_file() for name in RUN_FILES):
        raise UsageError(
            f"{args.run} is not a run folder (it holds no last.pt, best.pt or history.csv); "
            "list the runs with: torchlab runs"
        )
    run = read_run(folder)
    if run.problem and not run.checkpoint:
        raise UsageError(run.problem)
    meta = run.checkpoint
    lines = [("run", _relative(folder)), ("task", run.task), ("recipe", run.recipe)]
    if meta:
        kwargs = meta.get("model", {}).get("kwargs") or {}
        lines.append(
            ("model", run.model + (f" ({', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else ""))
        )
    stopped = run.epochs and run.epoch and run.epoch < run.epochs and run.history
    lines.append(("epochs", _epochs(run) + (" (stopped early)" if stopped else "")))
    lines.append(("best", _best(run)))
    if run.history:
        last = run.history[-1]
        lines.append(
            ("last epoch", "  ".join(f"{k}={_number(v)}" for k, v in last.items() if k not in ("epoch", "seconds")))
        )
        seconds = sum(row.get("seconds", 0.0) for row in run.history)
        lines.append(("training time", f"{seconds:.1f} s over {len(run.history)} epochs"))
    if run.test:
        lines.append(("test", "  ".join(f"{k}={_number(v)}" for k, v in run.test.items())))
    config = meta.get("config") or meta.get("hparams")  # "hparams": the copy older checkpoints kept
    if config:
        lines.append(("settings", ", ".join(f"{k}={v}" for k, v in config.items())))
    for key in ("seed", "world_size", "normalization"):
        if meta.get(key) is not None:
            lines.append((key.replace("_", " "), str(meta[key])))
    if meta.get("versions"):
        lines.append(("written by", ", ".join(f"{k} {v}" for k, v in meta["versions"].items())))
    lines.append(("date", _date(run.modified)))
    files = sorted(
        p.relative_to(folder).as_posix() + ("/" if p.is_dir() else "")
        for p in folder.rglob("*")
        if p.is_file() or p.name == "tensorboard"
    )
    lines.append(("files", ", ".join(f for f in files if not f.startswith("tensorboard/")) or "-"))
    if run.problem:
        lines.append(("warning", run.problem))
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0
