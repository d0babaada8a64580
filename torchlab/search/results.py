"""What a finished (or stopped) study leaves in its folder: best.toml, trials.csv, figures, and the command.

Written from the storage, so every worker's trials count, wherever they ran.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchlab.config import flag_name
from torchlab.runtime.config_file import config_toml
from torchlab.runtime.files import atomic_write_text

BEST = "best.toml"
TABLE = "trials.csv"
STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class TuneResult:
    """What `torchlab.tune` returns (the CLI prints it)."""

    task: str
    out: Path
    storage: str
    study_name: str
    metric: str
    states: dict[str, int]  # COMPLETE / PRUNED / FAIL counts
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None  # best.toml: `torchlab train --config` reads it
    command: str  # the ready `torchlab train` command of the best trial
    table: Path  # trials.csv
    figures: list[Path] = field(default_factory=list)
    failed_orphans: list[int] = field(default_factory=list)  # RUNNING trials of a dead process, now FAILED


def write_results(study: Any, plan: Any, figures: bool = True) -> Any:
    """Write best.toml, trials.csv and the figures into the study folder; return the TuneResult."""
    from torchlab.api import get_recipe
    from torchlab.search.figures import write_tune_figures

    out = Path(plan.out)
    out.mkdir(parents=True, exist_ok=True)
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    states = {name: sum(1 for t in trials if t.state.name == name) for name in STATES}
    table = out / TABLE
    atomic_write_text(table, trials_csv(trials), durable=False)
    best = _best(study)
    best_config, command, params = None, "", {}
    if best is not None:
        params = dict(best.params)
        cfg = get_recipe(plan.task, plan.recipe, **best.user_attrs["config"])
        best_config = out / BEST
        atomic_write_text(best_config, config_toml(plan.task, plan.recipe, plan.seed, cfg), durable=False)
        command = train_command(plan.task, best_config)
    drawn = write_tune_figures(study, trials, out / "figures", plan.metric) if figures else []
    return TuneResult(
        task=plan.task,
        out=out,
        storage=plan.storage,
        study_name=plan.study_name,
        metric=plan.metric,
        states=states,
        best_trial=best.number if best else None,
        best_value=best.value if best else None,
        best_params=params,
        best_config=best_config,
        command=command,
        table=table,
        figures=drawn,
    )


def train_command(task: str, config: Path) -> str:
    """The `torchlab train` command that trains the best trial's config again (into a folder of its own)."""
    return f"torchlab train {task} --config {config} --out checkpoints/{task}-tuned"


def flags_of(values: dict[str, Any]) -> str:
    """Config values as `torchlab train` flags: --lr 0.01 --batch-size 32 --no-standardize --patience none."""
    words = []
    for name, value in values.items():
        if isinstance(value, bool):
            words.append(flag_name(name) if value else "--no-" + flag_name(name)[2:])
        elif isinstance(value, (list, tuple)):
            words.append(f"{flag_name(name)} {' '.join(map(str, value))}")
        else:
            words.append(f"{flag_name(name)} {'none' if value is None else value}")
    return " ".join(words)


def trials_csv(trials: list[Any]) -> str:
    """One row per trial: number, state, value, epochs run (pruned: where), seconds, each param, folder."""
    names = sorted({name for t in trials for name in t.params})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["number", "state", "value", "epochs_run", "seconds", *names, "folder"])
    for t in trials:
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else ""
        )
        writer.writerow(
            [
                t.number,
                t.state.name,
                "" if t.value is None else t.value,
                len(t.intermediate_values),
                f"{seconds:.3f}" if seconds != "" else "",
                *(t.params.get(n, "") for n in names),
                t.user_attrs.get("folder", ""),
            ]
        )
    return buffer.getvalue()


def _best(study: Any) -> Any:
    try:
        return study.best_trial  # COMPLETE trials only
    except ValueError:
        return None
