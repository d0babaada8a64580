"""Comparing runs: their curves in one figure, and their config fields and metrics side by side.

    comparison = torchlab.compare(["checkpoints/digits", "checkpoints/digits-seed"])
    comparison.differences   # {"lr": [0.01, 0.1], "epochs": [20, 100], ...}: the fields that differ
    comparison.runs[0].best  # the metrics of its best epoch; .final: of its last epoch
    comparison.figure        # compare.png: train (solid) and validation (dashed) curves, one color per run

A run is a folder `torchlab train --out` wrote: last.pt and best.pt (the run's task, recipe, config,
seed, history and best epoch) and history.csv (the history alone). `torchlab compare` prints
`Comparison.table()`. Nothing is trained or evaluated; a folder that is missing or holds no
history is refused before the figure is written.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchlab.errors import UsageError

MISSING = "—"  # a field or metric a run does not have (runs of different tasks)
DEFAULT_OUT = "compare.png"
RUN_FILES = ("last.pt", "best.pt", "history.csv")
METRIC_WORDS = ("loss", "accuracy", "rmse", "mse", "rms", "nll")  # the last word of a metric's name
UNITS = ("px",)  # a unit after it: val_rmse_px
NOT_METRICS = ("epoch", "lr", "seconds")  # the history's other columns


def is_metric_name(name: str) -> bool:
    """Whether `name` names a metric (train_loss, test_accuracy, val_rmse_px, residual_rms), not a count,
    a duration or a config field (train_samples, fit_seconds, best_epoch, lr, epochs)."""
    words = name.lower().split("_")
    if len(words) > 1 and words[-1] in UNITS:
        words = words[:-1]
    return words[-1] in METRIC_WORDS


# ------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class RunRecord:
    """What one run folder says about itself: who it is, its config fields, its curves and best epoch."""

    name: str  # how the table and the legend call it: the folder, relative to the current one
    folder: Path
    task: str  # MISSING for a folder that holds history.csv alone
    recipe: str
    settings: dict[str, Any]  # the config's fields and the seed
    history: list[dict[str, float]]  # one row per epoch: epoch, train_loss, val_loss, ..., lr, seconds
    monitor: str  # the quantity early stopping watched (val_loss, val_rmse, ...)
    mode: str  # "min" or "max"
    best_epoch: int  # 1-based, as in the history
    epochs: int | None = None  # the maximum asked for
    evaluated: dict[str, float] = field(default_factory=dict)  # measured after training: test_accuracy, ...

    @property
    def final(self) -> dict[str, float]:
        """The metrics of the last epoch."""
        return _metrics(self.history[-1])

    @property
    def best(self) -> dict[str, float]:
        """The metrics of the best epoch (of `monitor`)."""
        return _metrics(next(row for row in self.history if row["epoch"] == self.best_epoch))


def _metrics(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k not in NOT_METRICS}


def read_run_record(target: str | os.PathLike) -> RunRecord:
    """The RunRecord of a run folder (or of the folder of one of its files); one-line errors for a missing
    folder, a folder that is not a run's, an unreadable checkpoint or a run without history."""
    from torchlab.engine.checkpoint import read_checkpoint

    path = Path(target)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise UsageError(f"there is no run folder {target}; list the runs with: torchlab runs")
    if not any((folder / name).is_file() for name in RUN_FILES):
        raise UsageError(
            f"{target} is not a run folder (it holds no last.pt, best.pt or history.csv); "
            "list the runs with: torchlab runs"
        )
    metas = {name: read_checkpoint(folder / name) for name in ("last.pt", "best.pt") if (folder / name).is_file()}
    meta = metas.get("last.pt") or metas.get("best.pt") or {}
    history = _numbers(meta.get("history") or [])
    if not history and (folder / "history.csv").is_file():
        history = _read_history_csv(folder / "history.csv")
    if not history or not any(_metrics(row) for row in history):
        raise UsageError(
            f"{target} holds no training history (no epoch in last.pt, best.pt or history.csv); "
            "compare runs that trained at least one epoch"
        )
    monitor, mode, best_epoch = _best_epoch(history, meta.get("best") or {})
    settings = dict(meta.get("config") or meta.get("hparams") or {})  # "hparams": older checkpoints' copy
    if meta.get("seed") is not None:
        settings["seed"] = meta["seed"]
    logged = {k for row in history for k in row}
    evaluated: dict[str, float] = {}
    for source in (metas.get("last.pt", {}), metas.get("best.pt", {})):  # best.pt's (measured on the kept weights) win
        evaluated.update(
            {
                k: float(v)
                for k, v in (source.get("metrics") or {}).items()
                if k not in logged and is_metric_name(k) and _is_number(v)
            }
        )
    return RunRecord(
        name=_relative(folder),
        folder=folder,
        task=str(meta.get("task", MISSING)),
        recipe=str(meta.get("recipe", MISSING)),
        settings=settings,
        history=history,
        monitor=monitor,
        mode=mode,
        best_epoch=best_epoch,
        epochs=meta.get("epochs"),
        evaluated=evaluated,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(rows: Sequence[dict[str, Any]]) -> list[dict[str, float]]:
    """History rows with their numbers as floats, the epoch numbered (1-based) when a row lacks it."""
    out = []
    for i, row in enumerate(rows, 1):
        clean = {str(k): float(v) for k, v in row.items() if _is_number(v)}
        clean["epoch"] = int(clean.get("epoch", i))
        out.append(clean)
    return out


def _read_history_csv(path: Path) -> list[dict[str, float]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [{k: float(v) for k, v in row.items() if k and v not in ("", None)} for row in csv.DictReader(f)]
    except (ValueError, csv.Error, UnicodeDecodeError):
        raise UsageError(
            f"{path} is not a history torchlab wrote (a value that is not a number); "
            "give the folder of a run that torchlab train wrote"
        ) from None
    return _numbers(rows)


def _best_epoch(history: list[dict[str, float]], best: dict[str, Any]) -> tuple[str, str, int]:
    """The monitored quantity, its mode and its best epoch: as the checkpoint stored them when they fit the
    history, else the lowest val_loss (or train_loss, or first metric) of the history."""
    monitor, mode = best.get("monitor"), best.get("mode")
    if not isinstance(monitor, str) or not any(monitor in row for row in history):
        names = [k for row in history for k in _metrics(row)]
        monitor = next((k for k in ("val_loss", "train_loss") if k in names), names[0])
        mode = "min"
    mode = mode if mode in ("min", "max") else "min"
    stored = best.get("epoch")
    if isinstance(stored, int) and any(row["epoch"] == stored and monitor in row for row in history):
        return monitor, mode, stored
    rows = [row for row in history if monitor in row and not math.isnan(row[monitor])]
    pick = min if mode == "min" else max
    return monitor, mode, int(pick(rows, key=lambda row: row[monitor])["epoch"]) if rows else int(history[-1]["epoch"])


def _relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


# --------------------------------------------------------------------------- comparing
@dataclass(frozen=True)
class Comparison:
    """What `compare` returns: the runs, the config fields that differ between them, and the figure."""

    runs: list[RunRecord]
    differences: dict[str, list[Any]]  # field (or seed) -> its value per run (MISSING where a run has no such field)
    figure: Path

    def table(self) -> list[str]:
        """The comparison as aligned text lines: one column per run; task, recipe, the fields that differ,
        epochs run (of the most asked for), the best monitored value and its epoch, the last epoch's metrics,
        then the metrics measured after training."""
        rows = [
            ["run", *(r.name for r in self.runs)],
            ["task", *(r.task for r in self.runs)],
            ["recipe", *(r.recipe for r in self.runs)],
        ]
        rows += [[name, *(_setting(v) for v in values)] for name, values in self.differences.items()]
        if not self.differences:
            rows.append(["settings", *("same" for _ in self.runs)])
        rows.append(["epochs run", *(_epochs(r) for r in self.runs)])
        rows.append(["best", *(f"{r.monitor} {_number(r.best[r.monitor])} (epoch {r.best_epoch})" for r in self.runs)])
        for name in _union((r.final for r in self.runs), losses_first=True):
            rows.append([f"final {name}", *(_number(r.final.get(name, MISSING)) for r in self.runs)])
        for name in _union(r.evaluated for r in self.runs):
            rows.append([name, *(_number(r.evaluated.get(name, MISSING)) for r in self.runs)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def compare(runs: Sequence[str | os.PathLike], *, out: str | os.PathLike | None = None) -> Comparison:
    """Compare two or more run folders: the config fields that differ, each run's best and final metrics, and a
    figure of their train and validation curves (one color per run, each run's best epoch starred).

    out: the figure's file (.png) or a folder to write compare.png into; default compare.png here.
    """
    targets = [runs] if isinstance(runs, (str, os.PathLike)) else list(runs)
    if len(targets) < 2:
        raise UsageError(f"compare needs at least two runs, got {len(targets)}; list the runs with: torchlab runs")
    records = [read_run_record(t) for t in targets]
    seen: dict[Path, str] = {}
    for target, record in zip(targets, records):
        key = record.folder.resolve()
        if key in seen:
            raise UsageError(f"{target} and {seen[key]} are the same run; give each run once")
        seen[key] = str(target)
    path = figure_path(out)
    differences = setting_differences(records)
    from torchlab.reporting.records import write_into

    write_into(path, lambda p: plot_comparison(records, p))
    return Comparison(records, differences, path)


def figure_path(out: str | os.PathLike | None) -> Path:
    """Where the figure goes: `out` itself (a .png file), compare.png inside `out` (a folder, or a name ending
    in a slash), or compare.png in the current folder."""
    if out is None or str(out) == "":
        return Path(DEFAULT_OUT)
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):  # a folder, or one to make ("figures/")
        return path / DEFAULT_OUT
    if path.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file or a folder, got {out}")
    return path


def setting_differences(records: Sequence[RunRecord]) -> dict[str, list[Any]]:
    """Each config field (or the seed) whose value is not the same in every run: {field: value per run}."""
    names = _union(r.settings for r in records)
    differences = {}
    for name in names:
        values = [r.settings.get(name, MISSING) for r in records]
        if any(v != values[0] for v in values[1:]):
            differences[name] = values
    return differences


def _union(dicts: Any, losses_first: bool = False) -> list[str]:
    """The keys of several dicts in order of first appearance (the losses first, if asked)."""
    names: list[str] = []
    for d in dicts:
        names += [k for k in d if k not in names]
    return sorted(names, key=lambda k: (not k.endswith("_loss"), names.index(k))) if losses_first else names


def _setting(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _epochs(run: RunRecord) -> str:
    last = int(run.history[-1]["epoch"])
    return f"{last}/{run.epochs}" if run.epochs else str(last)


# ---------------------------------------------------------------------------- drawing
def panel_names(runs: Sequence[RunRecord]) -> list[str]:
    """One panel per quantity: loss first, then every other metric a run logged for train or validation."""
    names = ["loss"]
    for run in runs:
        for row in run.history:
            for key in row:
                base = key.split("_", 1)[1] if key.startswith(("train_", "val_")) else None
                if base and base not in names:
                    names.append(base)
    return names


def _panel_of(monitor: str) -> str:
    return monitor.split("_", 1)[1] if monitor.startswith(("train_", "val_")) else monitor


def plot_comparison(runs: Sequence[RunRecord], path: str | os.PathLike) -> Path:
    """Train (solid) and validation (dashed) curves of every run, one color per run, one panel per quantity;
    a star on each run's monitored curve at its best epoch, a dotted line at that epoch in every panel."""
    import numpy as np
    from matplotlib.colors import TABLEAU_COLORS
    from matplotlib.lines import Line2D

    from torchlab.reporting.figures import (  # pyplot from there: figures.py picks the backend first
        curve_style,
        epoch_axis,
        plain_log_axis,
        plt,
        save_figure,
    )

    panels = panel_names(runs)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    colors = list(TABLEAU_COLORS)  # the tab10 colors by name: "tab:blue", "tab:orange", ...
    handles = []
    for i, run in enumerate(runs):
        color = colors[i % len(colors)]
        epochs = [row["epoch"] for row in run.history]
        style = curve_style(len(epochs))
        for ax, name in zip(axes[0], panels):
            for prefix, line in (("train_", "-"), ("val_", "--")):
                values = [row.get(prefix + name, np.nan) for row in run.history]
                if not np.all(np.isnan(values)):
                    ax.plot(epochs, values, line, color=color, **style)
            ax.axvline(run.best_epoch, color=color, linestyle=":", alpha=0.5, linewidth=1)
        best = run.best.get(run.monitor)
        if _panel_of(run.monitor) in panels and best is not None:
            axes[0][panels.index(_panel_of(run.monitor))].plot(
                [run.best_epoch],
                [best],
                linestyle="none",
                marker="*",
                markersize=15,
                color=color,
                markeredgecolor="black",
                zorder=5,
            )
        handles.append(Line2D([], [], color=color, label=f"{run.name} (best {run.monitor} epoch {run.best_epoch})"))
    handles += [
        Line2D([], [], color="gray", linestyle="-", label="train"),
        Line2D([], [], color="gray", linestyle="--", label="validation"),
        Line2D(
            [],
            [],
            color="gray",
            linestyle="none",
            marker="*",
            markersize=12,
            markeredgecolor="black",
            label="best epoch",
        ),
    ]
    every_epoch = [row["epoch"] for run in runs for row in run.history]
    for ax, name in zip(axes[0], panels):
        epoch_axis(ax, every_epoch)
        ax.set_title(name)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    loss_values = [v for run in runs for row in run.history for k, v in row.items() if k.endswith("_loss")]
    if loss_values and all(v > 0 for v in loss_values):
        axes[0][0].set_yscale("log")
        plain_log_axis(axes[0][0])
    axes[0][-1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    fig.suptitle(f"{len(runs)} runs compared")
    fig.tight_layout()
    return save_figure(fig, path)
