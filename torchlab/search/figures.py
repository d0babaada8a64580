"""A study's figures, drawn with matplotlib from its trials: how the best value improved, every trial's
curve (pruned ones in red, stopped where they were), and which parameters mattered (fANOVA importances)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torchlab.reporting.figures import plt, save_figure

PRUNED_COLOR, COMPLETE_COLOR, BEST_COLOR = "tab:red", "tab:blue", "black"


def write_tune_figures(study: Any, trials: list[Any], folder: Path, metric: str) -> list[Path]:
    """history.png, intermediate.png and importance.png in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    minimize = study.direction.name == "MINIMIZE"
    return [
        plot_optimization_history(trials, folder / "history.png", metric, minimize),
        plot_intermediate_values(trials, folder / "intermediate.png", metric),
        plot_importances(study, folder / "importance.png", metric),
    ]


def plot_optimization_history(trials: list[Any], path: Path, metric: str, minimize: bool) -> Path:
    """Each finished trial's value by trial number, and the best so far as a step line."""
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED") and _value(t) is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    for state, color, label in (
        ("COMPLETE", COMPLETE_COLOR, "complete"),
        ("PRUNED", PRUNED_COLOR, "pruned (last value)"),
    ):
        points = [(t.number, _value(t)) for t in done if t.state.name == state]
        if points:
            numbers, values = zip(*points)
            ax.scatter(numbers, values, s=18, color=color, label=label, zorder=3)
    complete = sorted((t.number, t.value) for t in done if t.state.name == "COMPLETE")
    if complete:
        best, steps = None, []
        for number, value in complete:
            best = value if best is None else (min(best, value) if minimize else max(best, value))
            steps.append((number, best))
        ax.step(*zip(*steps), where="post", color=BEST_COLOR, label="best so far")
    _no_data(ax, not done, "no finished trial yet")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} ({'lower' if minimize else 'higher'} is better)")
    ax.set_title(f"optimization history: {len(done)} trials")
    if done:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_intermediate_values(trials: list[Any], path: Path, metric: str) -> Path:
    """Every trial's metric by epoch, as the pruner saw it."""
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = 0
    for t in trials:
        steps = sorted(t.intermediate_values.items())
        if not steps:
            continue
        pruned = t.state.name == "PRUNED"
        ax.plot(
            *zip(*steps),
            color=PRUNED_COLOR if pruned else COMPLETE_COLOR,
            alpha=0.8 if pruned else 0.4,
            lw=1,
            marker="x" if pruned else None,
            markevery=[len(steps) - 1] if pruned else None,
        )
        drawn += 1
    _no_data(ax, drawn == 0, "no epoch reported yet")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} of each trial by epoch (red: pruned, x where it stopped)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_importances(study: Any, path: Path, metric: str) -> Path:
    """Horizontal bars: each parameter's share of the variance of the metric (fANOVA, over COMPLETE trials)."""
    import optuna

    importances: dict[str, float] = {}
    why = ""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        why = "needs two completed trials"
    else:
        try:
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
        except (ValueError, RuntimeError) as exc:  # e.g. no parameter varied among the completed trials
            why = str(exc).split(".")[0][:80]
    fig, ax = plt.subplots(figsize=(7, 0.5 * max(len(importances), 3) + 1.2))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color=COMPLETE_COLOR)
        for y, name in enumerate(names):
            ax.text(importances[name], y, f" {importances[name]:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, max(importances.values()) * 1.2 or 1)
    _no_data(ax, not importances, why)
    ax.set_xlabel(f"importance for {metric} (fANOVA, sums to 1)")
    ax.set_title(f"parameter importances over {len(complete)} completed trials")
    fig.tight_layout()
    return save_figure(fig, path)


def _value(trial: Any) -> float | None:
    if trial.value is not None:
        return trial.value
    steps = sorted(trial.intermediate_values.items())
    value = steps[-1][1] if steps else None
    return value if value is not None and math.isfinite(value) else None


def _no_data(ax: Any, empty: bool, why: str) -> None:
    if empty:
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
