"""`torchlab.tune`: search a task's recipe with Optuna, each trial an ordinary `torchlab.train` run.

    result = torchlab.tune("digit-mlp", trials=40, hidden=32)      # hidden fixed, the default space searched
    print(result.best_value, result.best_params, result.command)  # torchlab train digit-mlp --config .../best.toml

A study folder (default checkpoints/<task>-tune) holds the study's storage (`study.journal`, an
Optuna journal file, unless `storage` names another), one folder per trial (`trials/0007/`: best.pt,
last.pt, history.csv, config.toml and trial.json, which says COMPLETE, PRUNED or FAILED) and the
results: `best.toml`, `trials.csv` and `figures/`. Trials are judged by the task's validation metric
(`Task.tune_metric`, e.g. val_loss), never by the test split: the best value over a trial's epochs,
the epoch whose weights its best.pt holds.

Workers: `workers=K` starts K processes on this machine; the same call on other machines with the same
`storage` (a database URL, or a journal file on a shared disk) joins the study. Before each trial a
worker counts the trials already done or running in the storage, and a trial numbered past `trials`
of them is dropped again (FAILED, never run), so together they run exactly `trials` trials.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchlab.config import as_dict, duration_seconds
from torchlab.errors import TrainingError, UsageError
from torchlab.search.pruning import TrialReporter
from torchlab.search.results import TuneResult
from torchlab.search.space import Choice, Dimension, Range, build_space
from torchlab.search.storage import (
    JOURNAL,
    counted,
    fail_orphans,
    open_storage,
    require_optuna,
    storage_spec,
    this_process,
)

PRUNERS = ("median", "hyperband", "none")
PRUNE_WARMUP = 2  # median pruner: epochs every trial runs before it can be pruned (steps are 1-based epochs)
PRUNE_STARTUP = 5  # median pruner: trials that finish before any is pruned
FAILURES_IN_A_ROW = 3  # a worker gives up when this many of its trials fail one after another
STATUS = "trial.json"


@dataclass(frozen=True)
class StudyPlan:
    """Everything a worker process needs (plain, picklable values)."""

    task: str
    recipe: str
    fixed: dict[str, Any]
    space: dict[str, Dimension]
    out: str
    storage: str
    study_name: str
    trials: int
    deadline: float | None
    pruner: Any  # a name of PRUNERS or an optuna pruner
    seed: int
    device: str
    metric: str
    mode: str
    callbacks: tuple[Any, ...] = ()

    @property
    def direction(self) -> str:
        return "minimize" if self.mode == "min" else "maximize"


def tune(
    task: str,
    recipe: str | None = None,
    *,
    trials: int = 20,
    out: str | os.PathLike | None = None,
    search: Sequence[str] = (),
    search_only: bool = False,
    storage: str | os.PathLike | None = None,
    study_name: str | None = None,
    resume: bool = False,
    workers: int = 1,
    pruner: Any = "median",
    timeout: str | float | None = None,
    seed: int = 0,
    device: str = "auto",
    enqueue: Sequence[dict] = (),
    callbacks: Sequence[Any] = (),
    figures: bool = True,
    **fixed: Any,
) -> TuneResult:
    """Run (or continue) a study of `trials` trials of `task`; see the module docstring.

    search: entries "FIELD=LOW:HIGH[:log]" / "FIELD=A,B,C" added to (or replacing) the task's default
    space (search_only: instead of it). fixed: config fields every trial uses (they leave the space).
    storage: a database URL or a journal file shared by workers (default: <out>/study.journal).
    resume: continue the study in `out` (trials a killed process left RUNNING are marked FAILED).
    pruner: "median" (with a warm-up), "hyperband", "none", or an optuna pruner.
    timeout: no trial starts after it (90s, 10m, 2h or seconds). enqueue: params of the first trials.
    callbacks: torchlab.Callback objects handed to every trial's run. figures: draw the study's figures at the end.
    """
    plan = make_plan(
        task,
        recipe,
        trials=trials,
        out=out,
        search=search,
        search_only=search_only,
        storage=storage,
        study_name=study_name,
        resume=resume,
        pruner=pruner,
        timeout=timeout,
        seed=seed,
        device=device,
        callbacks=callbacks,
        fixed=fixed,
    )
    if not (isinstance(workers, int) and workers >= 1):
        raise UsageError(f"--workers must be a whole number >= 1, got {workers!r}")
    study = open_study(plan, create=True)
    orphans = fail_orphans(study)
    for number in orphans:
        mark_status(Path(plan.out) / "trials" / f"{number:04d}", "FAILED", "its process ended while it ran")
    if enqueue and not study.trials:
        for params in enqueue:
            study.enqueue_trial(dict(params))
    if workers == 1:
        run_worker(plan, 0)
    else:
        run_workers(plan, workers)
    from torchlab.search.results import write_results

    result = write_results(open_study(plan), plan, figures=figures)
    result.failed_orphans = orphans
    return result


def make_plan(
    task: str,
    recipe: str | None,
    *,
    trials: int,
    out: str | os.PathLike | None,
    search: Sequence[str],
    search_only: bool,
    storage: str | os.PathLike | None,
    study_name: str | None,
    resume: bool,
    pruner: Any,
    timeout: str | float | None,
    seed: int,
    device: str,
    callbacks: Sequence[Any],
    fixed: dict[str, Any],
) -> StudyPlan:
    """Check every argument (the space against the task's config) before anything runs; a mistake is a UsageError."""
    from torchlab.api import find_task, get_recipe

    entry = find_task(task)
    if entry.tune_metric is None:
        tunable = [n for n in _task_names() if _find(n).tune_metric is not None]
        raise UsageError(
            f"{entry.name} has no validation split to judge trials by; torchlab tune searches {', '.join(tunable)}"
        )
    if not (isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1):
        raise UsageError(f"--trials must be a whole number >= 1, got {trials!r}")
    if isinstance(pruner, str) and pruner not in PRUNERS:
        raise UsageError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    try:
        seconds = duration_seconds(timeout)
    except ValueError:
        raise UsageError(f"--timeout must be a duration such as 90s, 10m or 2h, got {timeout!r}") from None
    if recipe is not None and recipe not in entry.recipes:
        raise UsageError(f"unknown recipe {recipe!r} for {entry.name}; choose one of: {', '.join(entry.recipes)}")
    base = get_recipe(entry.name, recipe or "default", **fixed)
    space = build_space(base, entry.search_space, search, fixed, use_defaults=not search_only)
    folder = Path(out) if out is not None else Path("checkpoints") / f"{entry.name}-tune"
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; give a folder for the study")
    spec = storage_spec(storage, folder)
    if storage is None and not resume and Path(spec).exists():
        raise UsageError(
            f"{folder} already holds a study ({JOURNAL}); continue it with --resume or choose another --out"
        )
    if storage is None and resume and not Path(spec).exists():
        raise UsageError(f"--resume was given but {spec} does not exist; drop --resume or fix --out")
    if recipe is None:
        from torchlab.api import choose_recipe

        recipe = choose_recipe(entry, device)
        base = get_recipe(entry.name, recipe, **fixed)
    metric, mode = entry.tune_metric
    return StudyPlan(
        entry.name,
        recipe,
        dict(fixed),
        space,
        str(folder.resolve()),
        spec,
        study_name or entry.name,
        trials,
        time.time() + seconds if seconds else None,
        pruner,
        seed,
        device,
        metric,
        mode,
        tuple(callbacks),
    )


def open_study(plan: StudyPlan, create: bool = False, worker: int = 0) -> Any:
    """The plan's study (created when `create` and absent); a study of another task or metric is a UsageError."""
    optuna = require_optuna()
    storage = open_storage(plan.storage)
    if not create:
        study = optuna.load_study(study_name=plan.study_name, storage=storage, pruner=make_pruner(plan))
        # a sampler of its own per worker and per session: the same seed would repeat the same first trials
        seed = (plan.seed * 1009 + worker * 7919 + len(study.get_trials(deepcopy=False))) % 2**31
        study.sampler = optuna.samplers.TPESampler(seed=seed)
        return study
    study = optuna.create_study(
        study_name=plan.study_name,
        storage=storage,
        direction=plan.direction,
        pruner=make_pruner(plan),
        load_if_exists=True,
    )
    said = study.user_attrs
    if not said:
        study.set_user_attr("task", plan.task)
        study.set_user_attr("metric", plan.metric)
        study.set_user_attr("recipe", plan.recipe)
    elif (said.get("task"), said.get("metric")) != (plan.task, plan.metric):
        raise UsageError(
            f"study {plan.study_name!r} in {plan.storage} searches {said.get('task')} by "
            f"{said.get('metric')}, not {plan.task}; give another --study-name or --storage"
        )
    return study


def make_pruner(plan: StudyPlan) -> Any:
    optuna = require_optuna()
    if not isinstance(plan.pruner, str):
        return plan.pruner
    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP, n_warmup_steps=PRUNE_WARMUP + 1)
    if plan.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def run_workers(plan: StudyPlan, workers: int) -> None:
    """`workers` processes of `run_worker` on this machine; the first failure is raised once all have ended."""
    context = multiprocessing.get_context("spawn")  # torch is not fork-safe once it has run
    processes = [context.Process(target=_worker_main, args=(plan, k), daemon=False) for k in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    bad = [p.exitcode for p in processes if p.exitcode != 0]
    if bad:
        raise TrainingError(
            f"{len(bad)} of {workers} tune workers failed (exit status {bad[0]}); the study in "
            f"{plan.storage} keeps their trials: run again with --resume"
        )


def _worker_main(plan: StudyPlan, worker: int) -> None:
    import torch

    torch.set_num_threads(1)  # K workers share the machine's cores
    run_worker(plan, worker)


def run_worker(plan: StudyPlan, worker: int) -> None:
    """Ask for trials and run them until the study holds `plan.trials` trials that count, or time is up."""
    study = open_study(plan, worker=worker)
    failures: list[Exception] = []
    while counted(study) < plan.trials and (plan.deadline is None or time.time() < plan.deadline):
        outcome = run_trial(study, plan)
        if outcome == "surplus":
            break
        failures = failures + [outcome] if isinstance(outcome, Exception) else []
        if len(failures) >= FAILURES_IN_A_ROW:
            raise TrainingError(f"{len(failures)} trials in a row failed; the last: {failures[-1]}")


def run_trial(study: Any, plan: StudyPlan) -> str | Exception:
    """One trial: ask, check it is not one too many, train into trials/NNNN, tell. Returns its outcome."""
    optuna = require_optuna()
    from torchlab.api import get_recipe, train

    trial = study.ask()
    for key, value in this_process().items():
        trial.set_user_attr(key, value)
    if counted(study, before=trial.number) >= plan.trials:  # another worker took the last place first
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return "surplus"
    params = {name: suggest(trial, name, dim) for name, dim in plan.space.items()}
    folder = Path(plan.out) / "trials" / f"{trial.number:04d}"
    cfg = get_recipe(plan.task, plan.recipe, **plan.fixed, **params)
    trial.set_user_attr("config", as_dict(cfg))
    trial.set_user_attr("folder", str(folder))
    reporter = TrialReporter(trial, plan.metric, plan.mode)
    started = time.perf_counter()
    write_status(folder, trial.number, "RUNNING", params, reporter, started)
    try:
        train(
            plan.task,
            plan.recipe,
            config=cfg,
            out=folder,
            device=plan.device,
            seed=plan.seed,
            progress=False,
            figures=False,
            callbacks=[reporter, *plan.callbacks],
        )
    except optuna.TrialPruned as exc:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        write_status(folder, trial.number, "PRUNED", params, reporter, started, str(exc))
        return "PRUNED"
    except TrainingError as exc:  # e.g. a NaN loss at a high learning rate: this trial fails, the study goes on
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        write_status(folder, trial.number, "FAILED", params, reporter, started, str(exc))
        return exc
    except BaseException as exc:  # a usage error or an interrupt: every trial would fail the same way
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        write_status(folder, trial.number, "FAILED", params, reporter, started, f"{type(exc).__name__}: {exc}")
        raise
    value = reporter.best
    if value is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        write_status(folder, trial.number, "FAILED", params, reporter, started, f"no finite {plan.metric}")
        return TrainingError(f"trial {trial.number} recorded no finite {plan.metric}")
    study.tell(trial, value)
    write_status(folder, trial.number, "COMPLETE", params, reporter, started)
    return "COMPLETE"


def suggest(trial: Any, name: str, dim: Dimension) -> Any:
    """The trial's value of one dimension."""
    if isinstance(dim, Choice):
        return trial.suggest_categorical(name, list(dim.values))
    assert isinstance(dim, Range)
    if dim.integer:
        return trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
    return trial.suggest_float(name, dim.low, dim.high, log=dim.log)


def write_status(
    folder: Path,
    number: int,
    state: str,
    params: dict[str, Any],
    reporter: TrialReporter,
    started: float,
    message: str = "",
) -> None:
    """<trial>/trial.json: the trial's number, state (COMPLETE, PRUNED, FAILED), params, value and epochs."""
    import json

    from torchlab.runtime.files import atomic_write_text

    best = reporter.best
    status = {
        "number": number,
        "state": state,
        "params": params,
        "metric": reporter.metric,
        "value": best if best is None or math.isfinite(best) else None,
        "epochs": len(reporter.values),
        "pruned_at_epoch": reporter.pruned_at,
        "seconds": round(time.perf_counter() - started, 3),
        "message": message,
    }
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / STATUS, json.dumps(status, indent=1) + "\n")


def mark_status(folder: Path, state: str, message: str) -> None:
    """Change the state (and message) in an existing trial.json (a trial found orphaned); no folder: nothing."""
    import json

    from torchlab.runtime.files import atomic_write_text

    path = folder / STATUS
    status = json.loads(path.read_text()) if path.is_file() else {"number": int(folder.name)}
    if folder.is_dir():
        atomic_write_text(path, json.dumps({**status, "state": state, "message": message}, indent=1) + "\n")


def _task_names() -> list[str]:
    from torchlab.api import task_names

    return task_names()


def _find(name: str) -> Any:
    from torchlab.api import find_task

    return find_task(name)
